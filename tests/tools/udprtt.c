// SPDX-License-Identifier: GPL-2.0
/*
 * udprtt: UDP round trips over loopback, sendto to recv, 0.2 s apart, in
 * milliseconds on one line (bench/hold.sh: the first datagram of a natbpf
 * trace run is held while tracing turns on). Static, so it runs in the VM.
 *
 *   udprtt PORT [COUNT]     (default: 3 round trips)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	int count = argc > 2 ? atoi(argv[2]) : 3;
	int rx, tx;
	char buf[16];
	struct timeval wait = { .tv_sec = 10 }; /* a lost datagram must not hang the bench */

	if (argc < 2 || count < 1) {
		fprintf(stderr, "usage: udprtt PORT [COUNT]\n");
		return 2;
	}
	to.sin_port = htons(atoi(argv[1]));
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rx = socket(AF_INET, SOCK_DGRAM, 0);
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&to, sizeof(to)) < 0 ||
	    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait)) < 0) {
		perror("udprtt: socket");
		return 1;
	}
	for (int i = 0; i < count; i++) {
		double start = now_ms();

		if (sendto(tx, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1 || recv(rx, buf, sizeof(buf), 0) < 0) {
			perror("udprtt: send/recv");
			return 1;
		}
		printf("%s%.3f", i ? " " : "", now_ms() - start);
		usleep(200000);
	}
	printf("\n");
	return 0;
}
