/*
 * kvm_step.c -- bare-metal C baseline for kvmtrace's dense single-step bench.
 *
 * Creates a KVM VM with one real-mode vCPU, loads a raw guest image at
 * guest-physical 0x8000, enables KVM_GUESTDBG_ENABLE|KVM_GUESTDBG_SINGLESTEP
 * and spins on KVM_RUN, recording for each KVM_EXIT_DEBUG the fields of
 * kvm_run->debug.arch (pc, dr6, dr7, exception) into preallocated arrays.
 * With --regs, KVM_CAP_SYNC_REGS is enabled and rip/rsp/rax are recorded
 * from kvm_run->s.regs.regs on every exit as well.
 *
 * Only libc + <linux/kvm.h>.  Build:  cc -O2 -o kvm_step kvm_step.c
 *
 * Usage: kvm_step [--regs] [--long] [--blockirq] [--stop-at ADDR] [--dump PATH] GUEST.bin N_EVENTS
 *
 * --long runs the guest in 64-bit mode with kvmtrace's layout (flat GDT at
 * 0x10000, identity-mapped page tables at 0x12000); the default is real mode.
 * --blockirq adds KVM_GUESTDBG_BLOCKIRQ. --stop-at ADDR stops after the debug
 * exit whose pc is ADDR (as kvmtrace's stop_at).  The vCPU gets the host's
 * supported CPUID, as kvmtrace's do.
 *
 * Stops after N_EVENTS debug exits, at --stop-at, on KVM_EXIT_HLT, or on an OUT
 * to port 0xf4 (the benchmark guests' "exit" port).  Prints one JSON line:
 *   {"events": n, "seconds": s, "cpu_seconds": c, "events_per_s": x, "checksum": c, "stop": "..."}
 * checksum = XOR of all recorded pcs; stop is "limit", "stop_at", "hlt" or "io".
 * cpu_seconds is the CPU time of the looping thread (CLOCK_THREAD_CPUTIME_ID,
 * user + system), which a busy machine's time-slicing does not inflate;
 * user_seconds and sys_seconds split it (getrusage RUSAGE_THREAD).
 * Only the KVM_RUN loop is timed (CLOCK_MONOTONIC); VM setup and the
 * optional --dump happen outside the timed region.  The record arrays are
 * pre-faulted (memset) before timing so page faults are not measured.
 *
 * --dump PATH writes the records after timing as raw little-endian arrays,
 * back to back: u64 pc[n], u64 dr6[n], u64 dr7[n], u8 exception[n], and
 * with --regs additionally u64 rip[n], u64 rsp[n], u64 rax[n].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MEM_SIZE   (1u << 20)   /* 1 MiB: the whole real-mode space */
#define LOAD_ADDR        0x8000u
#define INITIAL_SP       0x7000u
#define EXIT_PORT        0xf4u
#define TSS_ADDR         0xfffbd000u  /* needed by VMX without unrestricted guest */
/* Long mode, as kvmtrace lays it out (rust/kvm/layout.rs). */
#define GDT_ADDR         0x10000u
#define PML4_ADDR        0x12000u
#define PDPT_ADDR        0x13000u
#define PD_ADDR          0x14000u
#define SEL_CODE64       0x08u
#define SEL_DATA         0x10u

static void die(const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    fprintf(stderr, "kvm_step: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (saved)
        fprintf(stderr, ": %s", strerror(saved));
    fputc('\n', stderr);
    exit(1);
}

static void *xalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        errno = ENOMEM;
        die("malloc(%zu)", n);
    }
    memset(p, 0, n ? n : 1); /* pre-fault outside the timed loop */
    return p;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User and system CPU seconds of the calling thread. */
static void thread_rusage(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static void setseg(struct kvm_segment *s)
{
    s->base = 0;
    s->selector = 0;
}

/* Flat 64-bit segments, identity paging of the first GiB with 2 MiB pages. */
static void setup_long_mode(uint8_t *mem, struct kvm_sregs *s)
{
    uint64_t *gdt = (uint64_t *)(mem + GDT_ADDR);
    gdt[0] = 0;
    gdt[1] = 0x00209b0000000000ull; /* 0x08: code64, P, DPL 0, L */
    gdt[2] = 0x00cf93000000ffffull; /* 0x10: data, P, G, D/B */
    uint64_t *pml4 = (uint64_t *)(mem + PML4_ADDR);
    uint64_t *pdpt = (uint64_t *)(mem + PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(mem + PD_ADDR);
    pml4[0] = PDPT_ADDR | 0x3;
    pdpt[0] = PD_ADDR | 0x3;
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = (i << 21) | 0x83;
    struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = SEL_CODE64, .type = 0xb,
                               .present = 1, .s = 1, .l = 1, .g = 1};
    struct kvm_segment data = {.base = 0, .limit = 0xffffffff, .selector = SEL_DATA, .type = 0x3,
                               .present = 1, .s = 1, .db = 1, .g = 1};
    s->cs = code;
    s->ds = s->es = s->fs = s->gs = s->ss = data;
    s->gdt.base = GDT_ADDR;
    s->gdt.limit = 3 * 8 - 1;
    s->cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
    s->cr3 = PML4_ADDR;
    s->cr4 = 0x620;      /* PAE, OSFXSR, OSXMMEXCPT */
    s->efer = 0x500;     /* LME, LMA */
}

static void set_supported_cpuid(int kvm, int vcpu)
{
    size_t n = 256;
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof(struct kvm_cpuid_entry2));
    if (!c)
        die("calloc cpuid");
    c->nent = (uint32_t)n;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
        die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
        die("KVM_SET_CPUID2");
    free(c);
}

static void write_all(FILE *f, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        die("write dump");
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--regs] [--long] [--blockirq] [--stop-at ADDR] [--dump PATH] GUEST.bin N_EVENTS\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int want_regs = 0, long_mode = 0, blockirq = 0, have_stop = 0;
    uint64_t stop_at = 0;
    const char *dump_path = NULL;
    const char *guest_path = NULL;
    const char *events_arg = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--regs")) {
            want_regs = 1;
        } else if (!strcmp(argv[i], "--long")) {
            long_mode = 1;
        } else if (!strcmp(argv[i], "--blockirq")) {
            blockirq = 1;
        } else if (!strcmp(argv[i], "--stop-at")) {
            if (++i >= argc)
                usage(argv[0]);
            stop_at = strtoull(argv[i], NULL, 0);
            have_stop = 1;
        } else if (!strcmp(argv[i], "--dump")) {
            if (++i >= argc)
                usage(argv[0]);
            dump_path = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            usage(argv[0]);
        } else if (!guest_path) {
            guest_path = argv[i];
        } else if (!events_arg) {
            events_arg = argv[i];
        } else {
            usage(argv[0]);
        }
    }
    if (!guest_path || !events_arg)
        usage(argv[0]);

    char *end;
    errno = 0;
    unsigned long long max_events = strtoull(events_arg, &end, 0);
    if (errno || *end || end == events_arg)
        die("bad event count '%s'", events_arg);

    /* ---- guest image ---- */
    int gfd = open(guest_path, O_RDONLY | O_CLOEXEC);
    if (gfd < 0)
        die("open %s", guest_path);
    uint8_t *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap guest memory");
    size_t loaded = 0, room = GUEST_MEM_SIZE - LOAD_ADDR;
    for (;;) {
        ssize_t r = read(gfd, mem + LOAD_ADDR + loaded, room - loaded);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read %s", guest_path);
        }
        if (r == 0)
            break;
        loaded += (size_t)r;
        if (loaded == room) {
            char extra;
            if (read(gfd, &extra, 1) > 0) {
                errno = 0;
                die("guest image larger than %zu bytes", room);
            }
            break;
        }
    }
    close(gfd);
    if (loaded == 0) {
        errno = 0;
        die("guest image %s is empty", guest_path);
    }

    /* ---- KVM setup ---- */
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("open /dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        errno = 0;
        die("KVM API version %d, expected %d", api, KVM_API_VERSION);
    }
    if (want_regs) {
        int caps = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
        if (caps < 0 || !(caps & KVM_SYNC_X86_REGS)) {
            errno = 0;
            die("KVM_CAP_SYNC_REGS / KVM_SYNC_X86_REGS not supported (caps=%d)", caps);
        }
    }

    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    /* Harmless on SVM; required for real mode on VMX w/o unrestricted guest. */
    if (ioctl(vm, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0)
        die("KVM_SET_TSS_ADDR");

    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .flags = 0,
        .guest_phys_addr = 0,
        .memory_size = GUEST_MEM_SIZE,
        .userspace_addr = (uint64_t)(uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    set_supported_cpuid(kvm, vcpu);
    /* Real mode: keep the reset sregs (CR0 = 0x60000010, PE=0) but put every
     * segment at base 0 / selector 0 so linear == physical == offset. */
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    setseg(&sregs.cs);
    setseg(&sregs.ds);
    setseg(&sregs.es);
    setseg(&sregs.fs);
    setseg(&sregs.gs);
    setseg(&sregs.ss);
    if (long_mode)
        setup_long_mode(mem, &sregs);
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");

    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = LOAD_ADDR;
    regs.rsp = INITIAL_SP;
    regs.rflags = 0x2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    struct kvm_guest_debug dbg;
    memset(&dbg, 0, sizeof dbg);
    dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | (blockirq ? KVM_GUESTDBG_BLOCKIRQ : 0);
    if (ioctl(vcpu, KVM_SET_GUEST_DEBUG, &dbg) < 0)
        die("KVM_SET_GUEST_DEBUG");

    if (want_regs) {
        run->kvm_valid_regs = KVM_SYNC_X86_REGS;
        run->kvm_dirty_regs = 0;
    }

    /* ---- record buffers (pre-faulted) ---- */
    size_t n_alloc = (size_t)max_events;
    uint64_t *pc = xalloc(n_alloc * sizeof *pc);
    uint64_t *dr6 = xalloc(n_alloc * sizeof *dr6);
    uint64_t *dr7 = xalloc(n_alloc * sizeof *dr7);
    uint8_t *exc = xalloc(n_alloc * sizeof *exc);
    uint64_t *rip = NULL, *rsp = NULL, *rax = NULL;
    if (want_regs) {
        rip = xalloc(n_alloc * sizeof *rip);
        rsp = xalloc(n_alloc * sizeof *rsp);
        rax = xalloc(n_alloc * sizeof *rax);
    }

    /* ---- timed KVM_RUN loop ---- */
    size_t n = 0;
    uint64_t checksum = 0;
    const char *stop = "limit";
    double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    double user0, sys0;
    thread_rusage(&user0, &sys0);
    double t0 = now_s();
    while (n < n_alloc) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_DEBUG:
            pc[n] = run->debug.arch.pc;
            dr6[n] = run->debug.arch.dr6;
            dr7[n] = run->debug.arch.dr7;
            exc[n] = (uint8_t)run->debug.arch.exception;
            checksum ^= run->debug.arch.pc;
            if (want_regs) {
                rip[n] = run->s.regs.regs.rip;
                rsp[n] = run->s.regs.regs.rsp;
                rax[n] = run->s.regs.regs.rax;
            }
            n++;
            if (have_stop && run->debug.arch.pc == stop_at) {
                stop = "stop_at";
                goto done;
            }
            break;
        case KVM_EXIT_HLT:
            stop = "hlt";
            goto done;
        case KVM_EXIT_IO:
            if (run->io.port == EXIT_PORT && run->io.direction == KVM_EXIT_IO_OUT) {
                stop = "io";
                goto done;
            }
            break; /* other ports: ignore (IN reads zero-filled data) */
        case KVM_EXIT_FAIL_ENTRY:
            errno = 0;
            die("KVM_EXIT_FAIL_ENTRY, hw reason 0x%llx after %zu events",
                (unsigned long long)run->fail_entry.hardware_entry_failure_reason, n);
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            errno = 0;
            die("KVM_EXIT_INTERNAL_ERROR, suberror %u after %zu events",
                run->internal.suberror, n);
            break;
        default:
            errno = 0;
            die("unexpected exit reason %u after %zu events", run->exit_reason, n);
        }
    }
done:;
    double seconds = now_s() - t0;
    double cpu_seconds = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    double user_seconds, sys_seconds;
    thread_rusage(&user_seconds, &sys_seconds);
    user_seconds -= user0;
    sys_seconds -= sys0;

    if (dump_path) {
        FILE *f = fopen(dump_path, "wb");
        if (!f)
            die("fopen %s", dump_path);
        write_all(f, pc, n * sizeof *pc);
        write_all(f, dr6, n * sizeof *dr6);
        write_all(f, dr7, n * sizeof *dr7);
        write_all(f, exc, n * sizeof *exc);
        if (want_regs) {
            write_all(f, rip, n * sizeof *rip);
            write_all(f, rsp, n * sizeof *rsp);
            write_all(f, rax, n * sizeof *rax);
        }
        if (fclose(f) != 0)
            die("close %s", dump_path);
    }

    printf("{\"events\": %zu, \"seconds\": %.9f, \"cpu_seconds\": %.9f, \"user_seconds\": %.9f, "
           "\"sys_seconds\": %.9f, \"events_per_s\": %.3f, \"checksum\": %" PRIu64 ", \"stop\": \"%s\"}\n",
           n, seconds, cpu_seconds, user_seconds, sys_seconds, seconds > 0 ? (double)n / seconds : 0.0,
           checksum, stop);

    munmap(run, (size_t)run_size);
    close(vcpu);
    close(vm);
    close(kvm);
    munmap(mem, GUEST_MEM_SIZE);
    free(pc);
    free(dr6);
    free(dr7);
    free(exc);
    free(rip);
    free(rsp);
    free(rax);
    return 0;
}
