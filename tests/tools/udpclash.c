// SPDX-License-Identifier: GPL-2.0
/*
 * udpclash: many threads send one UDP datagram each from the same socket to
 * the same destination at the same moment, so packets of one flow create
 * conntrack entries on several CPUs at once (the glibc parallel A/AAAA case).
 * In the style of the kernel selftest tools/testing/selftests/net/netfilter/udpclash.c.
 *
 *   udpclash ADDR PORT [THREADS [ROUNDS]]     (defaults: 128 threads, 10 rounds)
 *
 * Each round uses a new socket (a new source port), so each round is a new
 * flow and may clash again. With THREADS 1 it sends from the calling thread:
 * ROUNDS distinct flows quickly (to fill the conntrack table).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_storage dst;
static socklen_t dst_len;
static int sock;
static pthread_barrier_t start;

static void *sender(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start);
	if (sendto(sock, "natbpf", 6, 0, (struct sockaddr *)&dst, dst_len) < 0)
		perror("sendto");
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&dst;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&dst;
	int threads, rounds;

	if (argc < 3) {
		fprintf(stderr, "usage: %s ADDR PORT [THREADS [ROUNDS]]\n", argv[0]);
		return 2;
	}
	threads = argc > 3 ? atoi(argv[3]) : 128;
	rounds = argc > 4 ? atoi(argv[4]) : 10;
	if (threads < 1 || threads > 4096 || rounds < 1) {
		fprintf(stderr, "udpclash: bad THREADS or ROUNDS\n");
		return 2;
	}
	memset(&dst, 0, sizeof(dst));
	if (inet_pton(AF_INET, argv[1], &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(atoi(argv[2]));
		dst_len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(atoi(argv[2]));
		dst_len = sizeof(*v6);
	} else {
		fprintf(stderr, "udpclash: bad address %s\n", argv[1]);
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		pthread_t *tids = calloc(threads, sizeof(*tids));

		sock = socket(dst.ss_family, SOCK_DGRAM, 0);
		if (sock >= 0 && threads == 1) {
			if (sendto(sock, "natbpf", 6, 0, (struct sockaddr *)&dst, dst_len) < 0)
				perror("sendto");
			close(sock);
			free(tids);
			continue;
		}
		if (sock < 0 || !tids) {
			perror("socket");
			return 1;
		}
		pthread_barrier_init(&start, NULL, threads);
		for (int i = 0; i < threads; i++)
			if (pthread_create(&tids[i], NULL, sender, NULL) != 0) {
				perror("pthread_create");
				return 1;
			}
		for (int i = 0; i < threads; i++)
			pthread_join(tids[i], NULL);
		pthread_barrier_destroy(&start);
		close(sock);
		free(tids);
	}
	return 0;
}
