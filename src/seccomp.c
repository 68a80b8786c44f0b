/* Our seccomp filter, installed by the supervisor in the program's process
 * right before execve (see seccomp.h). Docker cannot stack profiles, but
 * filters stack in the kernel: this one runs on top of Docker's default
 * (or alone, for LocalExecutor) and refuses what a code sandbox never needs
 * and the default allows an unprivileged process. Only system calls: it
 * runs in the vfork child of the supervisor. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "seccomp.h"

#if defined(__x86_64__)
#define AB_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AB_ARCH AUDIT_ARCH_AARCH64
#endif

/* numbers common to every architecture since Linux 5.1, for older headers */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#define __NR_fsopen 430
#define __NR_fsconfig 431
#define __NR_fsmount 432
#define __NR_fspick 433
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif

#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define DENY(nr, e) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(e))
/* call nr with the setuid or setgid bit (04000, 02000) in its mode argument
 * i: EPERM; without: allowed (nothing further down concerns it) */
#define DENY_SUGID(nr, i)                                                        \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4),                               \
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i])),   \
  BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 06000, 0, 1),                             \
  BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* the namespace flags clone() accepts (CLONE_NEWTIME shares the exit
 * signal's byte in clone() and exists only for clone3 and unshare) */
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                  CLONE_NEWPID | CLONE_NEWNET)

/* FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: frees space, never reserves it */
#define PUNCH_HOLE 3

#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

#define MAX_INSNS 160
#define APPEND(f, n, part) (memcpy((f) + (n), (part), sizeof(part)), (n) += sizeof(part) / sizeof((part)[0]))

int ab_seccomp_install(int profile, int no_fallocate) {
#ifndef AB_ARCH
  (void)profile;
  (void)no_fallocate;
  return -ENOSYS;   /* no filter for this architecture: the caller refuses to run */
#else
  /* a number no system call has, when fallocate stays allowed */
  const unsigned falloc_nr = no_fallocate ? (unsigned)__NR_fallocate : 0xFFFFFFFFu;
  const struct sock_filter head[] = {
    /* another architecture's system call table (i386 through int 0x80) would
     * get around every number below */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AB_ARCH, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(ENOSYS)),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
    /* the x32 ABI: the same calls with bit 30 set */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(ENOSYS)),
#endif
    /* io_uring: a second system call interface that seccomp cannot see
     * into, and a steady source of kernel bugs; ENOSYS so that libraries
     * fall back as on a kernel without it */
    DENY(__NR_io_uring_setup, ENOSYS),
    DENY(__NR_io_uring_enter, ENOSYS),
    DENY(__NR_io_uring_register, ENOSYS),
    /* clone3 passes its flags in memory, where a filter cannot look: ENOSYS
     * makes libc fall back to clone, whose flags are checked below */
    DENY(__NR_clone3, ENOSYS),
    /* other processes' memory and descriptors */
    DENY(__NR_ptrace, EPERM),
    DENY(__NR_process_vm_readv, EPERM),
    DENY(__NR_process_vm_writev, EPERM),
    DENY(__NR_pidfd_getfd, EPERM),
    DENY(__NR_kcmp, EPERM),
    DENY(__NR_process_madvise, EPERM),
    /* kernel attack surface an unprivileged process may reach */
    DENY(__NR_bpf, EPERM),
    DENY(__NR_perf_event_open, EPERM),
    DENY(__NR_userfaultfd, EPERM),
    DENY(__NR_keyctl, EPERM),
    DENY(__NR_add_key, EPERM),
    DENY(__NR_request_key, EPERM),
    DENY(__NR_fanotify_init, EPERM),
    DENY(__NR_name_to_handle_at, EPERM),
    DENY(__NR_open_by_handle_at, EPERM),
    /* new namespaces (user namespaces make most of the kernel's privileged
     * code reachable) and mounts */
    DENY(__NR_unshare, EPERM),
    DENY(__NR_setns, EPERM),
    DENY(__NR_mount, EPERM),
    DENY(__NR_umount2, EPERM),
    DENY(__NR_pivot_root, EPERM),
    DENY(__NR_open_tree, EPERM),
    DENY(__NR_move_mount, EPERM),
    DENY(__NR_fsopen, EPERM),
    DENY(__NR_fsconfig, EPERM),
    DENY(__NR_fsmount, EPERM),
    DENY(__NR_fspick, EPERM),
    DENY(__NR_mount_setattr, EPERM),
    /* the kernel itself */
    DENY(__NR_kexec_load, EPERM),
    DENY(__NR_kexec_file_load, EPERM),
    DENY(__NR_init_module, EPERM),
    DENY(__NR_finit_module, EPERM),
    DENY(__NR_delete_module, EPERM),
  };
  /* AB_SECCOMP_SANDBOX: the daemonless sandbox runs the code as root of its
   * own user namespace, where calls gated by a capability of that namespace
   * become reachable; none of them has a use in a code block */
  const struct sock_filter sandbox[] = {
    DENY(__NR_chroot, EPERM),
    DENY(__NR_acct, EPERM),
    DENY(__NR_swapon, EPERM),
    DENY(__NR_swapoff, EPERM),
    DENY(__NR_reboot, EPERM),
    DENY(__NR_syslog, EPERM),
    DENY(__NR_vhangup, EPERM),
    /* ioctl: TIOCSTI pushes bytes into a terminal's input (the host's shell
     * runs them once the code exits), TIOCLINUX reads and writes a virtual
     * console. cmd is an unsigned int to the kernel: the low word is all. */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 5),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)),
    /* the setuid and setgid bits: what the code leaves in work_dir is the
     * caller's on the host (root's, through a root caller's idmapped
     * mount), and the owner may set them without any capability. Writing
     * to a file clears them (no CAP_FSETID), so chmod is the only way to a
     * set-id program with content. */
#ifdef __NR_chmod
    DENY_SUGID(__NR_chmod, 1),
#endif
    DENY_SUGID(__NR_fchmod, 1),
    DENY_SUGID(__NR_fchmodat, 2),
    DENY_SUGID(__NR_fchmodat2, 2),
  };
  const struct sock_filter tail[] = {
    /* with a workspace quota: fallocate reserves space faster than any
     * poll (and past RLIMIT_FSIZE with KEEP_SIZE), so only punching holes
     * is allowed; EOPNOTSUPP makes glibc's posix_fallocate write instead */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, falloc_nr, 0, 4),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PUNCH_HOLE, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EOPNOTSUPP)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    /* clone with a namespace flag (nr reloaded: the fallocate check may
     * have loaded an argument) */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, RET_ERRNO(EPERM)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  /* the parts only jump within themselves (and the ioctl and mode checks
   * leave the accumulator holding nr whenever they fall through), so they
   * concatenate */
  struct sock_filter f[MAX_INSNS];
  _Static_assert(sizeof head + sizeof sandbox + sizeof tail <= sizeof f, "MAX_INSNS too small");
  size_t n = 0;
  APPEND(f, n, head);
  if (profile >= AB_SECCOMP_SANDBOX) APPEND(f, n, sandbox);
  APPEND(f, n, tail);
  struct sock_fprog prog = {(unsigned short)n, f};
  /* a filter needs no_new_privs (or CAP_SYS_ADMIN); Docker sets it anyway */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return -errno;
  return 0;
#endif
}
