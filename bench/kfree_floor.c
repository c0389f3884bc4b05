// Loads bench/kfree_floor.bpf.o (an empty tp_btf program on kfree_skb) and
// keeps it attached until SIGINT/SIGTERM; creates READY_FILE once attached.
// Usage: kfree_floor OBJECT READY_FILE
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: kfree_floor OBJECT READY_FILE\n");
		return 2;
	}
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj) != 0) {
		fprintf(stderr, "kfree_floor: cannot load %s\n", argv[1]);
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "kfree_floor");
	struct bpf_link *link = prog ? bpf_program__attach(prog) : NULL;
	if (!link) {
		fprintf(stderr, "kfree_floor: cannot attach tp_btf/kfree_skb\n");
		bpf_object__close(obj);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int fd = open(argv[2], O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	while (!stop)
		pause();
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
