import { openConnectionsIn, parseProcNetTcp } from './ports.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 5967 1 00000000ad40267a 100 0 0 10 0
   1: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 62003        0 5968 1 00000000ad40267b 100 0 0 10 0
   2: 0100007F:4E20 0100007F:C350 01 00000000:00000000 00:00000000 00000000 62003        0 5969 1 00000000ad40267c 20 4 30 10 -1
   3: 0A00020F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5970 1 00000000ad40267d 100 0 0 10 0
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5235 1 000000005eff1eba 100 0 0 10 0
   1: 00000000000000000000000000000000:4E21 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 62004        0 6473 1 00000000756d47b1 100 0 0 10 0
   2: B80D0120000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6474 1 00000000756d47b2 100 0 0 10 0
   3: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6475 1 00000000756d47b3 100 0 0 10 0
   4: 00000000000000000000000001000000:1F92 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000  1000        0 6476 1 00000000756d47b4 100 0 0 10 0
`;

describe('parseProcNetTcp', () => {
  it('lists IPv4 LISTEN sockets with decoded addresses, hex ports and uids', () => {
    expect(parseProcNetTcp(TCP, { ipv6: false })).toEqual([
      { address: '127.0.0.1', port: 1883, uid: 105, state: 'LISTEN' },
      { address: '0.0.0.0', port: 20000, uid: 62003, state: 'LISTEN' },
      { address: '15.2.0.10', port: 22, uid: 0, state: 'LISTEN' },
    ]);
  });

  it('lists IPv6 LISTEN sockets, skipping established ones', () => {
    expect(parseProcNetTcp(TCP6, { ipv6: true })).toEqual([
      { address: '::1', port: 6379, uid: 0, state: 'LISTEN' },
      { address: '::', port: 20001, uid: 62004, state: 'LISTEN' },
      { address: '2001:db8::1', port: 8080, uid: 1000, state: 'LISTEN' },
      { address: '::ffff:7f00:1', port: 8081, uid: 1000, state: 'LISTEN' },
    ]);
  });

  it('ignores the header, blank lines and lines of the other family', () => {
    expect(parseProcNetTcp('', { ipv6: false })).toEqual([]);
    expect(parseProcNetTcp(TCP6, { ipv6: false })).toEqual([]);
  });
});

describe('openConnectionsIn', () => {
  const header = TCP.split('\n')[0];
  const socket = (local: string, state: string) =>
    `   9: ${local} 0100007F:C350 ${state} 00000000:00000000 00:00000000 00000000 62003        0 1 1 0 20 4 30 10 -1`;

  it('counts established, accepting and half-closed connections to the port on the address', () => {
    const text = [
      header,
      socket('0400007F:4E20', '01'), // ESTABLISHED to 127.0.0.4:20000
      socket('0400007F:4E20', '03'), // SYN_RECV
      socket('0400007F:4E20', '08'), // CLOSE_WAIT
      socket('0400007F:4E20', '06'), // TIME_WAIT: nothing left to answer
      socket('0400007F:4E20', '0A'), // the listener itself
      socket('0400007F:4E21', '01'), // another port
      socket('0500007F:4E20', '01'), // another address
    ].join('\n');
    expect(openConnectionsIn(text, { ipv6: false, port: 20000, address: '127.0.0.4' })).toBe(3);
    expect(openConnectionsIn(text, { ipv6: false, port: 20001, address: '127.0.0.4' })).toBe(1);
    expect(openConnectionsIn(text, { ipv6: false, port: 20002, address: '127.0.0.4' })).toBe(0);
  });

  it('counts IPv4-mapped IPv6 sockets as the IPv4 address', () => {
    expect(openConnectionsIn(TCP6, { ipv6: true, port: 0x1f92, address: '::1' })).toBe(1);
    const mapped = [header, socket('0000000000000000FFFF00000400007F:4E20', '01')].join('\n');
    expect(openConnectionsIn(mapped, { ipv6: true, port: 20000, address: '127.0.0.4' })).toBe(1);
  });
});
