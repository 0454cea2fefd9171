/* Load for bench/host.sh, on one thread with epoll, so the relay under test (not the load)
 * is what is measured. TCP on 127.0.0.1 or a Unix socket path.
 *
 *   load echo PORT                  an echo server (prints "listening" once ready)
 *   load crowd TO N REQS SIZE       N clients at once, each REQS request/responses of SIZE bytes
 *   load short TO TOTAL CONC        TOTAL connections, CONC at a time, each one 1 KiB echo
 *   load sink PORT                  reads every connection to its end and drops the bytes
 *   load send TO MIB STREAMS        STREAMS connections at once, MIB MiB each in 1 MiB writes;
 *                                   prints "seconds MiB/s" once the sink has closed every one
 *
 * TO is a port (127.0.0.1) or a path. crowd and short print "seconds errors" and exit 1 if
 * any connection failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *to;
static int ep;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int dial(void) {
    int unix_path = strchr(to, '/') != NULL;
    int s = socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) { perror("socket"); exit(2); }
    int r;
    if (unix_path) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        strncpy(a.sun_path, to, sizeof a.sun_path - 1);
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    } else {
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(to)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    }
    if (r < 0 && errno != EINPROGRESS && errno != EAGAIN) return -1;
    return s;
}

/* One client: its socket, how many requests are left, how much of the answer has come. */
struct conn { int fd; int left; size_t got; int sent; };

static char *req, *buf;
static size_t size;
static int errors, open_now;

static void watch(struct conn *c, int events, int op) {
    struct epoll_event e = { .events = events, .data.ptr = c };
    epoll_ctl(ep, op, c->fd, &e);
}

static void start(struct conn *c, int reqs) {
    c->fd = dial(); c->left = reqs; c->got = 0; c->sent = 0;
    if (c->fd < 0) { errors++; return; }
    open_now++;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* Moves client c on; returns 1 when it has finished (ok or not). */
static int step(struct conn *c, unsigned ev) {
    if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) goto fail;
    if (!c->sent) {
        if (write(c->fd, req, size) != (ssize_t)size) goto fail;
        c->sent = 1;
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        return 0;
    }
    ssize_t n = read(c->fd, buf, size - c->got);
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) goto fail;
    c->got += n;
    if (c->got < size) return 0;
    c->got = 0;
    if (--c->left > 0) {
        if (write(c->fd, req, size) != (ssize_t)size) goto fail;
        return 0;
    }
    close(c->fd); open_now--;
    return 1;
fail:
    close(c->fd); open_now--; errors++;
    return 1;
}

static void run(long total, long conc, int reqs) {
    struct conn *cs = calloc(conc, sizeof *cs);
    long started = 0;
    for (long i = 0; i < conc && started < total; i++, started++) start(&cs[i], reqs);
    struct epoll_event evs[256];
    while (open_now > 0) {
        int n = epoll_wait(ep, evs, 256, 30000);
        if (n == 0) { fprintf(stderr, "load: nothing moved in 30 s\n"); exit(1); }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (step(c, evs[i].events) && started < total) { start(c, reqs); started++; }
        }
    }
}

static int listener(int port);

static void echo(int port) {
    int l = listener(port), one = 1;
    struct epoll_event e = { .events = EPOLLIN, .data.fd = l }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &e);
    printf("listening\n");
    fflush(stdout);
    static char b[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, b, sizeof b);
            if (r > 0) {
                /* Small answers on loopback: the send buffer takes them whole. */
                if (write(fd, b, r) != r) close(fd);
            } else if (r == 0 || errno != EAGAIN) {
                close(fd);
            }
        }
    }
}

static int listener(int port) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); exit(2); }
    return l;
}

static void sink(int port) {
    int l = listener(port);
    struct epoll_event e = { .events = EPOLLIN, .data.fd = l }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &e);
    printf("listening\n");
    fflush(stdout);
    static char b[1 << 20];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, c;
            if (fd == l) {
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r;
            while ((r = read(fd, b, sizeof b)) > 0) {}
            if (r == 0 || errno != EAGAIN) close(fd);
        }
    }
}

/* One sending stream: bytes left to write, and whether its end-of-file was sent. */
struct stream { int fd; long left; int done; };

static void send_all(long mib, int n) {
    static char b[1 << 20];
    struct stream *ss = calloc(n, sizeof *ss);
    struct epoll_event evs[256];
    int open_streams = n;
    for (int i = 0; i < n; i++) {
        ss[i].fd = dial(); ss[i].left = mib << 20;
        if (ss[i].fd < 0) { perror("connect"); exit(1); }
        struct epoll_event e = { .events = EPOLLOUT, .data.ptr = &ss[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &e);
    }
    while (open_streams > 0) {
        int k = epoll_wait(ep, evs, 256, 30000);
        if (k == 0) { fprintf(stderr, "load: nothing moved in 30 s\n"); exit(1); }
        for (int i = 0; i < k; i++) {
            struct stream *s = evs[i].data.ptr;
            if (!s->done) {
                ssize_t w;
                while (s->left > 0 && (w = write(s->fd, b, s->left < (long)sizeof b ? s->left : (long)sizeof b)) > 0)
                    s->left -= w;
                if (s->left > 0 && errno != EAGAIN) { perror("write"); exit(1); }
                if (s->left == 0) {
                    /* Done when the far end closes: everything went through the relay. */
                    shutdown(s->fd, SHUT_WR); s->done = 1;
                    struct epoll_event e = { .events = EPOLLIN, .data.ptr = s };
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
                }
            } else if (read(s->fd, b, sizeof b) <= 0) {
                close(s->fd); open_streams--;
            }
        }
    }
}

int main(int argc, char **argv) {
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    ep = epoll_create1(0);
    if (argc == 3 && !strcmp(argv[1], "echo")) echo(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "sink")) sink(atoi(argv[2]));
    double t0 = now();
    if (argc == 5 && !strcmp(argv[1], "send")) {
        to = argv[2];
        send_all(atol(argv[3]), atoi(argv[4]));
        double took = now() - t0;
        printf("%.3f %.1f\n", took, atol(argv[3]) * atof(argv[4]) / took);
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "crowd")) {
        to = argv[2]; size = atol(argv[5]);
        req = malloc(size); buf = malloc(size); memset(req, 'x', size);
        run(atol(argv[3]), atol(argv[3]), atoi(argv[4]));
    } else if (argc == 5 && !strcmp(argv[1], "short")) {
        to = argv[2]; size = 1024;
        req = malloc(size); buf = malloc(size); memset(req, 'x', size);
        run(atol(argv[3]), atol(argv[4]), 1);
    } else {
        fprintf(stderr, "usage: load echo PORT | sink PORT | send TO MIB STREAMS | crowd TO N REQS SIZE | short TO TOTAL CONC\n");
        return 2;
    }
    printf("%.3f %d\n", now() - t0, errors);
    return errors ? 1 : 0;
}
