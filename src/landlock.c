/* Landlock (landlock.h): the ruleset of one run, built and enforced in the
 * program's process. The kernel headers of the build host may predate the
 * ABI we use (Debian 12's stop at ABI 2), so the structures and rights are
 * spelled here from the kernel's UAPI rather than taken from
 * linux/landlock.h; they only ever grow at the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "landlock.h"

/* the same numbers on every architecture (the generic table) */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define CREATE_RULESET_VERSION (1u << 0)
#define RULE_PATH_BENEATH 1

/* include/uapi/linux/landlock.h, LANDLOCK_ACCESS_FS_* */
#define FS_EXECUTE (1ull << 0)
#define FS_WRITE_FILE (1ull << 1)
#define FS_READ_FILE (1ull << 2)
#define FS_READ_DIR (1ull << 3)
#define FS_MAKE_CHAR (1ull << 6)
#define FS_MAKE_BLOCK (1ull << 11)
#define FS_ABI1 ((1ull << 13) - 1)   /* EXECUTE .. MAKE_SYM */
#define FS_REFER (1ull << 13)        /* ABI 2 */
#define FS_TRUNCATE (1ull << 14)     /* ABI 3 */
#define FS_IOCTL_DEV (1ull << 15)    /* ABI 5 */
/* LANDLOCK_SCOPE_*, ABI 6 */
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define SCOPE_SIGNAL (1ull << 1)

#define RIGHTS_READ (FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)
/* what a rule on a file (not a directory) may carry */
#define RIGHTS_FILE (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)

/* struct landlock_ruleset_attr as of ABI 6 (net from 4, scoped from 6). A
 * kernel that knows fewer fields accepts the longer struct when the fields
 * it does not know are zero. */
typedef struct {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
} ruleset_attr;

/* struct landlock_path_beneath_attr is packed: 12 bytes */
typedef struct __attribute__((packed)) {
  uint64_t allowed_access;
  int32_t parent_fd;
} path_beneath_attr;

int ab_landlock_abi(void) {
  long v = syscall(SYS_landlock_create_ruleset, (void *)0, (size_t)0, CREATE_RULESET_VERSION);
  return v >= 1 ? (int)v : v == 0 ? -ENOSYS : -errno;
}

const char *ab_landlock_why(int err) {
  switch (err) {
  case ENOSYS: return "the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK, Linux 5.13+)";
  case EOPNOTSUPP: return "Landlock is built into the kernel but not enabled (add landlock to the lsm= boot parameter)";
  case EPERM: return "the Landlock system calls are refused here (a seccomp profile, e.g. an old Docker default?)";
  case ENOMEM: return "out of memory";
  case E2BIG: return "the kernel refused the ruleset (E2BIG)";
  case EINVAL: return "the kernel refused the ruleset (EINVAL)";
  default: return "Landlock could not be enforced";
  }
}

/* The rights this ABI can enforce, so every one we do not grant is denied. */
static uint64_t handled_fs(int abi) {
  uint64_t h = FS_ABI1;
  if (abi >= 2) h |= FS_REFER;
  if (abi >= 3) h |= FS_TRUNCATE;
  if (abi >= 5) h |= FS_IOCTL_DEV;
  return h;
}

/* One rule: 0, or the path is left out (reported as skipped). Symbolic links
 * are followed: /lib on a merged-/usr system is /usr/lib, and a rule is on
 * the inode it names. */
static int add_path(int ruleset, const char *path, uint64_t want, uint64_t handled) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  int rc = -1;
  if (fstat(fd, &st) == 0) {
    path_beneath_attr pb = {want & handled, fd};
    if (!S_ISDIR(st.st_mode)) pb.allowed_access &= RIGHTS_FILE;
    if (syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &pb, 0) == 0) rc = 0;
  }
  close(fd);
  return rc;
}

int ab_landlock_apply(char *const *paths, int nread, int nwrite, ab_landlock_out *out) {
  out->abi = 0;
  out->err = 0;
  out->skipped[0] = out->skipped[1] = 0;
  int abi = ab_landlock_abi();
  if (abi < 0) {
    out->err = -abi;
    return abi;
  }
  if (abi > AB_LANDLOCK_ABI_KNOWN) abi = AB_LANDLOCK_ABI_KNOWN;
  ruleset_attr attr = {handled_fs(abi), 0, abi >= 6 ? SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL : 0};
  long ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0u);
  if (ruleset < 0) {
    out->err = errno;
    return -out->err;
  }
  /* read-write: every handled right but mknod of devices, which a sandbox
   * never needs (and a user namespace's root could otherwise try) */
  const uint64_t rw = attr.handled_access_fs & ~(FS_MAKE_CHAR | FS_MAKE_BLOCK);
  int n = nread + nwrite;
  if (n > AB_LANDLOCK_MAX_PATHS) n = AB_LANDLOCK_MAX_PATHS;
  for (int i = 0; i < n; i++)
    if (add_path((int)ruleset, paths[i], i < nread ? RIGHTS_READ : rw, attr.handled_access_fs) != 0)
      out->skipped[i / 32] |= 1u << (i % 32);
  int rc = 0;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      syscall(SYS_landlock_restrict_self, (int)ruleset, 0u) != 0)
    rc = -errno;
  close((int)ruleset);
  if (rc) out->err = -rc;
  else out->abi = abi;
  return rc;
}
