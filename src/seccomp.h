/* agentbox's seccomp filter for model-written code (seccomp.c): sets
 * no_new_privs and installs a filter that refuses io_uring, ptrace and the
 * other cross-process calls, bpf, perf_event_open, keyrings, userfaultfd,
 * new namespaces and mounts, and module/kexec loading; any other
 * architecture's system calls get ENOSYS. AB_SECCOMP_SANDBOX (the
 * daemonless sandbox's profile) also refuses ioctl TIOCSTI and TIOCLINUX
 * and the administrative calls a user namespace's root could reach
 * (chroot, acct, swapon/off, reboot, syslog, vhangup). Inherited by every
 * descendant and across execve; cannot be removed. With no_fallocate (a
 * workspace quota), fallocate other than punching a hole fails with
 * EOPNOTSUPP. Async-signal-safe. Returns 0 or -errno (-ENOSYS: no filter
 * for this architecture). */
#ifndef AGENTBOX_SECCOMP_H
#define AGENTBOX_SECCOMP_H

/* the profiles, as ab_run_opts.seccomp carries them */
enum { AB_SECCOMP_OFF = 0, AB_SECCOMP_DEFAULT = 1, AB_SECCOMP_SANDBOX = 2 };

int ab_seccomp_install(int profile, int no_fallocate);

#endif
