/*
 * A C peer for the semaphore tests: glibc's named semaphores and System V
 * semop, as any C program uses them.
 *
 *   sem-peer create NAME VALUE     sem_open(O_CREAT | O_EXCL, 0600, VALUE)
 *   sem-peer wait NAME MS          sem_timedwait: "waited 0" or "waited ETIMEDOUT"
 *   sem-peer post NAME N           sem_post N times
 *   sem-peer value NAME            sem_getvalue: "value N"
 *   sem-peer unlink NAME           sem_unlink
 *   sem-peer semop KEY INDEX DELTA [undo]   one semop: "semop 0" or "semop ERRNO"
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <time.h>

static sem_t* open_existing(const char* name) {
  sem_t* sem = sem_open(name, 0);
  if (sem == SEM_FAILED) {
    perror("sem_open");
    exit(1);
  }
  return sem;
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const char* cmd = argv[1];
  if (strcmp(cmd, "create") == 0 && argc == 4) {
    sem_t* sem = sem_open(argv[2], O_CREAT | O_EXCL, 0600, (unsigned)atoi(argv[3]));
    if (sem == SEM_FAILED) {
      perror("sem_open");
      return 1;
    }
    return sem_close(sem) == 0 ? 0 : 1;
  }
  if (strcmp(cmd, "wait") == 0 && argc == 4) {
    sem_t* sem = open_existing(argv[2]);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    long ms = atol(argv[3]);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
    int r;
    while ((r = sem_timedwait(sem, &deadline)) < 0 && errno == EINTR) {
    }
    printf("waited %s\n", r == 0 ? "0" : errno == ETIMEDOUT ? "ETIMEDOUT" : strerror(errno));
    return 0;
  }
  if (strcmp(cmd, "post") == 0 && argc == 4) {
    sem_t* sem = open_existing(argv[2]);
    for (int i = atoi(argv[3]); i > 0; i--) {
      if (sem_post(sem) < 0) {
        perror("sem_post");
        return 1;
      }
    }
    return 0;
  }
  if (strcmp(cmd, "value") == 0) {
    int value;
    sem_getvalue(open_existing(argv[2]), &value);
    printf("value %d\n", value);
    return 0;
  }
  if (strcmp(cmd, "unlink") == 0) return sem_unlink(argv[2]) == 0 ? 0 : 1;
  if (strcmp(cmd, "semop") == 0 && argc >= 5) {
    int id = semget((key_t)strtoul(argv[2], NULL, 0), 0, 0);
    if (id < 0) {
      perror("semget");
      return 1;
    }
    struct sembuf op = {(unsigned short)atoi(argv[3]), (short)atoi(argv[4]), 0};
    if (argc == 6 && strcmp(argv[5], "undo") == 0) op.sem_flg = SEM_UNDO;
    printf("semop %d\n", semop(id, &op, 1) == 0 ? 0 : errno);
    return 0;
  }
  return 2;
}
