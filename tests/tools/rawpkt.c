// Sends one hand-made IPv4 TCP or UDP packet through a raw socket, for the
// INVALID scenario: flag combinations conntrack refuses (SYN+RST), a bare
// ACK of no connection, and a UDP datagram with a wrong checksum.
// Usage: rawpkt SRC DST SPORT DPORT tcp FLAGS [bad-csum]
//        rawpkt SRC DST SPORT DPORT udp [bad-csum]
// FLAGS: letters of S (SYN), A (ACK), R (RST), F (FIN), P (PSH), e.g. SR.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

// The L4 checksum over the IPv4 pseudo-header and the segment.
static uint16_t l4_checksum(const struct iphdr *ip, const void *l4, size_t len)
{
	uint8_t pseudo[12];
	memcpy(pseudo, &ip->saddr, 4);
	memcpy(pseudo + 4, &ip->daddr, 4);
	pseudo[8] = 0;
	pseudo[9] = ip->protocol;
	pseudo[10] = (uint8_t)(len >> 8);
	pseudo[11] = (uint8_t)len;
	return fold(sum16(l4, len, sum16(pseudo, sizeof(pseudo), 0)));
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: rawpkt SRC DST SPORT DPORT tcp FLAGS [bad-csum] | udp [bad-csum]\n");
		return 2;
	}
	int tcp = strcmp(argv[5], "tcp") == 0;
	if (!tcp && strcmp(argv[5], "udp") != 0) {
		fprintf(stderr, "rawpkt: protocol %s: give tcp or udp\n", argv[5]);
		return 2;
	}
	if (tcp && argc < 7) {
		fprintf(stderr, "rawpkt: tcp needs FLAGS, e.g. SR\n");
		return 2;
	}
	int bad = strcmp(argv[argc - 1], "bad-csum") == 0;
	uint8_t pkt[64] = { 0 };
	struct iphdr *ip = (struct iphdr *)pkt;
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->id = htons((uint16_t)getpid());
	ip->protocol = tcp ? IPPROTO_TCP : IPPROTO_UDP;
	if (inet_pton(AF_INET, argv[1], &ip->saddr) != 1 || inet_pton(AF_INET, argv[2], &ip->daddr) != 1) {
		fprintf(stderr, "rawpkt: bad address\n");
		return 2;
	}
	uint16_t sport = (uint16_t)atoi(argv[3]), dport = (uint16_t)atoi(argv[4]);
	size_t l4len;
	if (tcp) {
		struct tcphdr *th = (struct tcphdr *)(pkt + sizeof(*ip));
		th->source = htons(sport);
		th->dest = htons(dport);
		th->seq = htonl(1000);
		th->doff = 5;
		th->window = htons(64240);
		for (const char *f = argv[6]; *f; f++) {
			switch (*f) {
			case 'S': th->syn = 1; break;
			case 'A': th->ack = 1; th->ack_seq = htonl(2000); break;
			case 'R': th->rst = 1; break;
			case 'F': th->fin = 1; break;
			case 'P': th->psh = 1; break;
			default: fprintf(stderr, "rawpkt: flag %c: give S, A, R, F or P\n", *f); return 2;
			}
		}
		l4len = sizeof(*th);
		th->check = l4_checksum(ip, th, l4len);
		if (bad)
			th->check ^= 0x5555;
	} else {
		struct udphdr *uh = (struct udphdr *)(pkt + sizeof(*ip));
		uh->source = htons(sport);
		uh->dest = htons(dport);
		l4len = sizeof(*uh) + 4;
		uh->len = htons((uint16_t)l4len);
		memcpy(pkt + sizeof(*ip) + sizeof(*uh), "natb", 4);
		uh->check = l4_checksum(ip, uh, l4len);
		if (bad)
			uh->check ^= 0x5555;
	}
	size_t total = sizeof(*ip) + l4len;
	ip->tot_len = htons((uint16_t)total);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  // IP_HDRINCL: the kernel fills only the IP checksum
	if (fd < 0) {
		perror("rawpkt: socket (needs CAP_NET_RAW)");
		return 1;
	}
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = ip->daddr };
	if (sendto(fd, pkt, total, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)total) {
		perror("rawpkt: sendto");
		return 1;
	}
	close(fd);
	return 0;
}
