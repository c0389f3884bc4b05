// Receives UDP datagrams on PORT (any address) as fast as it can until
// SIGINT/SIGTERM, then prints how many it received: the far end of the
// forwarded flood in bench/overhead.sh.
// Usage: udpsink PORT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: udpsink PORT\n");
		return 2;
	}
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int size = 16 << 20;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		perror("udpsink");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	enum { BATCH = 64 };
	static char bufs[BATCH][128];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sizeof(bufs[i]) };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	long received = 0;
	while (!stop) {
		int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
		if (n > 0)
			received += n;
		else if (n < 0 && errno != EINTR)
			break;
	}
	printf("%ld\n", received);
	return 0;
}
