/*
 * Preloaded into linux.uml only (LD_PRELOAD), so that UML 6.1 boots on CPUs whose XSAVE
 * state is larger than the buffer it was built with (AMX: ~11 KiB of tile state).
 *
 * UML restores a process's FPU state with PTRACE_SETREGSET(NT_X86_XSTATE) from a fixed-size
 * buffer (2696 bytes in Debian's 6.1). The host kernel takes that request only for a buffer of
 * exactly its own full XSAVE size and answers EFAULT otherwise; PTRACE_GETREGSET with the
 * short buffer works (it truncates). So when, and only when, such a SETREGSET fails with
 * EFAULT, this reads the task's whole current state, lays UML's bytes over its start (the
 * legacy area, the XSAVE header and every component UML knows of) and writes the whole size.
 * Every other call goes to the kernel unchanged, so hosts that do not need it see no
 * difference.
 *
 * No allocation and no dlsym: UML runs this from its kernel context, where glibc's malloc is
 * not the allocator in charge, and its stacks are small (hence the static buffer).
 */
#if defined(__x86_64__) && defined(__linux__)
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Far above any XSAVE size so far (AMX: 11008 bytes); the kernel truncates to the real one. */
static unsigned char whole[64 * 1024] __attribute__((aligned(64)));
static volatile int busy;

static long sys_ptrace(long request, pid_t pid, void *addr, void *data)
{
    return syscall(SYS_ptrace, request, pid, addr, data);
}

static long set_whole_xstate(pid_t pid, const struct iovec *short_iov)
{
    struct iovec iov = { whole, sizeof whole };
    long rc;

    while (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
        ;
    rc = sys_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov);
    if (rc == 0 && iov.iov_len > short_iov->iov_len) {
        memcpy(whole, short_iov->iov_base, short_iov->iov_len);
        rc = sys_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &iov);
    } else if (rc == 0) {
        /* The short buffer was not short: the EFAULT had another cause. Report it as it was. */
        errno = EFAULT;
        rc = -1;
    }
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    return rc;
}

/* glibc's contract: the PEEK requests return the word read, with errno 0 on success. */
long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    pid_t pid;
    void *addr, *data;
    long word, rc;
    int peek;

    va_start(ap, request);
    pid = va_arg(ap, pid_t);
    addr = va_arg(ap, void *);
    data = va_arg(ap, void *);
    va_end(ap);

    peek = request == PTRACE_PEEKTEXT || request == PTRACE_PEEKDATA || request == PTRACE_PEEKUSER;
    rc = sys_ptrace(request, pid, addr, peek ? (void *)&word : data);
    if (rc == 0 && peek) {
        errno = 0;
        return word;
    }
    if (rc == -1 && errno == EFAULT && request == PTRACE_SETREGSET &&
        (long)addr == NT_X86_XSTATE && data != NULL)
        return set_whole_xstate(pid, data);
    return rc;
}
#endif
