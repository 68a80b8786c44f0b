/* agentbox's seccomp filter for model-written code (seccomp.c): sets
 * no_new_privs and installs a filter that refuses io_uring, ptrace and the
 * other cross-process calls, bpf, perf_event_open, keyrings, userfaultfd,
 * new namespaces and mounts, module/kexec loading, and ioctl TIOCSTI and
 * TIOCLINUX (typing into or reading a terminal); any other
 * architecture's system calls get ENOSYS. Inherited by every descendant and
 * across execve; cannot be removed. With no_fallocate (a workspace quota),
 * fallocate other than punching a hole fails with EOPNOTSUPP.
 * Async-signal-safe. Returns 0 or -errno (-ENOSYS: no filter for this
 * architecture). */
#ifndef AGENTBOX_SECCOMP_H
#define AGENTBOX_SECCOMP_H

int ab_seccomp_install(int no_fallocate);

#endif
