// Sends N UDP datagrams as fast as possible and prints the packets per
// second: the load for bench/overhead.sh and the drops flood scenario.
// Usage: udpflood ADDR PORT COUNT [PORTS]
// With PORTS, the destination port cycles through PORT .. PORT+PORTS-1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: udpflood ADDR PORT COUNT [PORTS]\n");
		return 2;
	}
	long ports = argc == 5 ? atol(argv[4]) : 1;
	long first = atol(argv[2]);
	if (ports < 1 || first < 1 || first + ports - 1 > 65535) {
		fprintf(stderr, "udpflood: bad port range %s+%s\n", argv[2], argc == 5 ? argv[4] : "1");
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "udpflood: bad address %s\n", argv[1]);
		return 2;
	}
	long count = atol(argv[3]);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || (ports == 1 && connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0)) {
		perror("udpflood");
		return 1;
	}
	char payload[64] = "natbpf-bench";
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	/* One send per packet: a dropping firewall makes send() fail with
	 * EPERM after the packet went through the hooks, which is what we time. */
	for (long i = 0; i < count; i++) {
		if (ports == 1) {
			(void)send(fd, payload, sizeof(payload), 0);
			continue;
		}
		dst.sin_port = htons((unsigned short)(first + i % ports));
		(void)sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&dst, sizeof(dst));
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.0f\n", count / secs);
	return 0;
}
