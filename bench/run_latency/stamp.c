/* First-instruction stamp: a static program with no libc whose entry point
 * reads CLOCK_MONOTONIC before anything else, then writes it in decimal
 * nanoseconds to stdout, followed by its cgroup (/proc/self/cgroup). */
typedef unsigned long u64;
struct ts { long sec, nsec; };
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
void __attribute__((noreturn, used)) stamp_main(void) {
    struct ts t;
    sys3(228, 1, (long)&t, 0); /* clock_gettime(CLOCK_MONOTONIC) */
    char buf[4200];
    u64 ns = (u64)t.sec * 1000000000UL + (u64)t.nsec;
    char tmp[24]; int n = 0;
    do { tmp[n++] = '0' + ns % 10; ns /= 10; } while (ns);
    int len = 0;
    while (n) buf[len++] = tmp[--n];
    buf[len++] = '\n';
    long fd = sys3(2, (long)"/proc/self/cgroup", 0, 0);
    if (fd >= 0) {
        long r = sys3(0, fd, (long)(buf + len), sizeof buf - len);
        if (r > 0) len += r;
    }
    sys3(1, 1, (long)buf, len);
    sys3(60, 0, 0, 0);
    for (;;) {}
}
__asm__(".globl _start\n_start:\n and $-16, %rsp\n call stamp_main\n");
