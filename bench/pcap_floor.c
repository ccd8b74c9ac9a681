/*
 * pcap_floor: the floor for any pcap-reading probe — a bare libpcap read of a
 * savefile that only counts packets and captured/wire bytes.
 *
 *   cc -O2 -o pcap_floor pcap_floor.c -lpcap
 *   pcap_floor FILE
 *
 * Prints: packets <N> caplen_bytes <N> wire_bytes <N>
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.pcap\n", argv[0]);
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (p == NULL) {
        fprintf(stderr, "pcap_floor: %s\n", err);
        return 1;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t packets = 0, caplen = 0, wire = 0;
    unsigned sink = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        caplen += h->caplen;
        wire += h->len;
        if (h->caplen > 0)
            sink += data[0]; /* touch the packet so the read is real */
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "pcap_floor: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets %llu caplen_bytes %llu wire_bytes %llu touch %u\n",
           (unsigned long long)packets, (unsigned long long)caplen,
           (unsigned long long)wire, sink & 1u);
    return 0;
}
