// The floor for bench-shm.mjs: what C gets from the same machine.
//   shm-floor pingpong ITERS SPIN_NS  two processes (fork) sharing one
//       MAP_SHARED page bounce an 8-byte message; each waits by spinning up
//       to SPIN_NS then sleeping on a shared futex, the protocol of ibal's
//       Doorbell (sequence word + sleeper count). Prints the mean and the
//       median half round trip in microseconds (the median, as perftest's
//       t_typical, shrugs off the round trips a busy machine preempts).
//   shm-floor memcpy ITERS  copies 1 MiB ITERS times; prints MiB/s.
// Output: one JSON line.
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct bell {
  uint32_t seq;
  uint32_t waiters;
  char pad[56];
};
struct shared {
  struct bell ping, pong;
  uint64_t msg[2][8];
};

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void ring(struct bell *b) {
  __atomic_add_fetch(&b->seq, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&b->waiters, __ATOMIC_SEQ_CST))
    syscall(SYS_futex, &b->seq, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static void wait_bell(struct bell *b, uint32_t seen, double spin_ns) {
  double end = now_ns() + spin_ns;
  for (unsigned i = 1;; i++) {
    if (__atomic_load_n(&b->seq, __ATOMIC_ACQUIRE) != seen) return;
    __builtin_ia32_pause();
    if ((i & 31) == 0 && now_ns() >= end) break;
  }
  __atomic_add_fetch(&b->waiters, 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&b->seq, __ATOMIC_SEQ_CST) == seen)
    syscall(SYS_futex, &b->seq, FUTEX_WAIT, seen, NULL, NULL, 0);
  __atomic_sub_fetch(&b->waiters, 1, __ATOMIC_SEQ_CST);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int pingpong(long iters, double spin_ns) {
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return 1;
  memset(s, 0, sizeof *s);
  long warm = iters / 10 + 100;
  pid_t pid = fork();
  if (pid == 0) {
    uint32_t seen = 0;
    for (long i = 0; i < warm + iters; i++) {
      wait_bell(&s->ping, seen, spin_ns);
      seen = __atomic_load_n(&s->ping.seq, __ATOMIC_ACQUIRE);
      s->msg[1][0] = s->msg[0][0] + 1;
      ring(&s->pong);
    }
    _exit(0);
  }
  uint32_t seen = 0;
  double t0 = 0;
  double *rtt = malloc(sizeof(double) * iters);
  for (long i = 0; i < warm + iters; i++) {
    if (i == warm) t0 = now_ns();
    double ts = now_ns();
    s->msg[0][0] = (uint64_t)i;
    ring(&s->ping);
    wait_bell(&s->pong, seen, spin_ns);
    seen = __atomic_load_n(&s->pong.seq, __ATOMIC_ACQUIRE);
    if (s->msg[1][0] != (uint64_t)i + 1) {
      fprintf(stderr, "lost message %ld\n", i);
      return 1;
    }
    if (i >= warm) rtt[i - warm] = now_ns() - ts;
  }
  double us = (now_ns() - t0) / 1e3 / iters / 2;
  waitpid(pid, NULL, 0);
  qsort(rtt, iters, sizeof(double), cmp_double);
  printf("{\"halfRttUs\":%.4f,\"medianHalfRttUs\":%.4f}\n", us, rtt[iters / 2] / 2e3);
  free(rtt);
  return 0;
}

static int copy(long iters) {
  size_t n = 1 << 20;
  uint8_t *a = aligned_alloc(64, n), *b = aligned_alloc(64, n);
  memset(a, 1, n);
  memset(b, 2, n);
  for (int i = 0; i < 10; i++) memcpy(b, a, n);
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    a[i & 4095] = (uint8_t)i;
    memcpy(b, a, n);
    __asm__ volatile("" : : "r"(b) : "memory");
  }
  double s = (now_ns() - t0) / 1e9;
  printf("{\"MiBps\":%.1f}\n", iters / s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "pingpong")) return pingpong(atol(argv[2]), atof(argv[3]));
  if (argc >= 3 && !strcmp(argv[1], "memcpy")) return copy(atol(argv[2]));
  fprintf(stderr, "usage: shm-floor pingpong ITERS SPIN_NS | memcpy ITERS\n");
  return 2;
}
