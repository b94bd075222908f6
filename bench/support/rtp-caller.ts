/**
 * The callers' RTP of bench/product-load.ts, in its own process, so that 1,000 callers cost one
 * event loop instead of SIPp's 1,000 play_pcap_audio threads. SIPp keeps all the SIP; the SDP of
 * its INVITEs names one of this process's ports (round-robin over `portCount` ports), and this
 * process does the media of every call that reaches them:
 *
 * - Caller side: when a socket receives RTP from a server address:port it has not seen (or with a
 *   new SSRC there: a new call on a reused server port), it starts a stream to that address:port,
 *   from that socket (the server takes RTP only from the SDP's address, and latches the port), that
 *   replays the pcap's RTP packets (caller audio and RFC 2833 keys) at their recorded offsets. The
 *   server starts its prompt right after the ACK, so a replay starts where SIPp's (at the 200 OK)
 *   did, a few ms later. Every stream sends the same packet Buffers, unchanged (each server
 *   socket sees one stream). One timer, every TICK_MS, sends every due packet of every stream;
 *   when its pcap ends, the caller keeps talking as a phone line does: PCMU silence every 20 ms
 *   (the pcap's SSRC, sequence and timestamp continued), until the server has sent nothing for
 *   a second (the call ended). Otherwise the server's sockets would see a quiet caller for the
 *   ~11 s of charge, result and hand-back, and send from unconnected sockets, which a talking
 *   caller never makes them do.
 * - Receive side, like rtp-sink.ts: inside a measurement window opened and closed by the parent,
 *   the arrival time of every packet per stream: gaps, gaps > 30 / > 40 ms, streams with a gap
 *   > 30 ms, sequence loss; and this process's CPU, event-loop delay and send lateness.
 *
 * - Driven mode (5th argument `driven`, bench/edge-relay.ts): a stream starts only when the
 *   parent asks (`call`: the address:port to send to, found out of band), as PCMU silence every
 *   20 ms with its own SSRC from the first packet (no pcap), and runs until `hangup-all`: a relay
 *   only sends back what the far side sends. Packets from an address:port no stream sends to
 *   are counted and ignored. The send side is timed too: each stream's send-to-send gap and the
 *   RFC 3550 interarrival jitter of its sends (taking the send times as arrivals), so that what
 *   a relay adds is the far end's figure minus this one.
 *
 *   argv: <host> <firstPort> <portCount> <pcapFile> [answer|driven]
 */
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { Histogram, type HistogramSummary } from './histogram.js';
import { ProcessWindow } from './measurement-window.js';
import { readPcapRtp } from './pcap-rtp.js';
import { push, serveRpc } from './rpc.js';

export interface CallerReport {
  windowMs: number;
  /** Streams that received at least one packet in the window. */
  streams: number;
  packets: number;
  /** Arrival-to-arrival gap of each stream's in-order packets. */
  gapsMs: HistogramSummary;
  gapsOver30: number;
  gapsOver40: number;
  streamsOver30: number;
  missing: number;
  reordered: number;
  /** missing / (packets + missing). */
  lossRatio: number;
  /** How long after its recorded offset each packet went out, in the window. */
  sendLatenessMs: HistogramSummary;
  packetsSentInWindow: number;
  cpuPercentOfOneCore: number;
  eventLoopDelayMs: { p50: number; p99: number; p999: number; max: number };
  /** Over the whole run: streams started, and those that sent their whole pcap. */
  streamsStarted: number;
  streamsReplayed: number;
  packetsSent: number;
  sendErrors: number;
  /** The pcap: RTP packets and length. */
  pcapPackets: number;
  pcapMs: number;
  recvBufferBytes: number;
  /** Send-to-send gap of each stream's 20 ms silence packets, in the window. */
  sendGapsMs: HistogramSummary;
  /** RFC 3550 jitter of those sends (each packet's running estimate), in the window. */
  sendJitterMs: HistogramSummary;
  /** Driven mode: packets from an address:port no stream sends to. */
  strays: number;
}

/** One call's media: the replay towards the server and the timing of what the server sends. */
interface CallerStream {
  socket: Socket;
  address: string;
  port: number;
  /** The server's SSRC: another one from the same address:port is another call. */
  ssrc: number;
  startedAt: number;
  /** Next pcap packet to send; the pcap's length once the replay is over. */
  next: number;
  /** After the pcap: this stream's silence packet (own buffer: its sequence and timestamp move) and when the next is due. */
  tail: Buffer | undefined;
  tailAt: number;
  sending: boolean;
  lastArrival: number;
  lastSeq: number;
  /** The window this stream was last counted in. */
  window: number;
  over30: boolean;
  /** Send side of the tail: last send time and the RFC 3550 jitter estimate of the sends. */
  lastSentAt: number;
  sendJitter: number;
}

/** What the callers receive inside the measurement window: every stream's arrival-to-arrival gaps. */
class ReceiveTiming {
  readonly gaps = new Histogram();
  streams = 0;
  packets = 0;
  missing = 0;
  reordered = 0;
  streamsOver30 = 0;
  recording = false;
  #window = 0;
  #since = 0;

  begin(now: number): void {
    this.gaps.reset();
    this.streams = this.packets = this.missing = this.reordered = this.streamsOver30 = 0;
    this.#window++;
    this.#since = now;
    this.recording = true;
  }

  /** A packet of stream s (its first when fresh: no gap yet). */
  arrival(s: CallerStream, seq: number, now: number, fresh: boolean): void {
    if (this.recording) {
      if (s.window !== this.#window) {
        s.window = this.#window;
        s.over30 = false;
        this.streams++;
      }
      this.packets++;
      // Out of order: the last in-order packet stays the reference for the next gap.
      if (!fresh && !this.#inOrder(s, seq, now)) return;
    }
    s.lastArrival = now;
    s.lastSeq = seq;
  }

  /** Counts the gap since the stream's previous packet; false for a duplicate, late packet or jump. */
  #inOrder(s: CallerStream, seq: number, now: number): boolean {
    const ahead = (seq - s.lastSeq) & 0xffff;
    if (ahead === 0 || ahead >= 3000) {
      this.reordered++;
      return false;
    }
    this.missing += ahead - 1;
    // A gap counts only when both of its packets fall inside the window.
    if (s.lastArrival >= this.#since) {
      const gap = now - s.lastArrival;
      this.gaps.add(gap);
      if (gap > 30 && !s.over30) {
        s.over30 = true;
        this.streamsOver30++;
      }
    }
    return true;
  }
}

const TICK_MS = 2;
const FRAME_MS = 20;
/** A stream the server has sent nothing to for this long is a call that ended. */
const CALL_OVER_MS = 1000;

/** The silence packet that continues a replay: the header of the pcap's last audio packet, PCMU silence. */
function silenceAfter(lastAudio: Buffer): Buffer {
  const b = Buffer.alloc(12 + 160, 0xff);
  lastAudio.copy(b, 0, 0, 12);
  b[0] = 0x80;
  b[1] = 0; // PCMU, no marker
  return b;
}

function main(): void {
  const [host = '127.0.0.1', firstPortArg = '39900', countArg = '8', pcapFile, mode = 'answer'] = process.argv.slice(2);
  if (pcapFile === undefined || (mode !== 'answer' && mode !== 'driven')) throw new Error('usage: rtp-caller.ts <host> <firstPort> <portCount> <pcapFile> [answer|driven]');
  const driven = mode === 'driven';
  const firstPort = Number(firstPortArg);
  const count = Number(countArg);
  const pcap = readPcapRtp(pcapFile);
  const { packets: pkts, offsetsMs } = pcap;
  const last = pkts.length;
  const lastAudio = [...pkts].reverse().find((b) => ((b[1] as number) & 0x7f) === 0);
  if (lastAudio === undefined) throw new Error(`${pcapFile}: no PCMU packet to continue the caller's audio from`);

  // Per socket: server address -> server port -> stream.
  const bySocket: Map<string, Map<number, CallerStream>>[] = [];
  const sending: CallerStream[] = [];
  let timer: NodeJS.Timeout | undefined;

  const rx = new ReceiveTiming();
  const lateness = new Histogram();
  const sendGaps = new Histogram();
  const sendJitter = new Histogram();
  let strays = 0;
  const proc = new ProcessWindow();
  let sentInWindow = 0;
  const total = { started: 0, replayed: 0, sent: 0, sendErrors: 0 };

  /** Sends every due packet of every stream; runs every TICK_MS while any stream sends. */
  const tick = (): void => {
    const now = performance.now();
    for (let i = sending.length - 1; i >= 0; i--) {
      const s = sending[i] as CallerStream;
      let k = s.next;
      while (k < last && s.startedAt + (offsetsMs[k] as number) <= now) {
        s.socket.send(pkts[k] as Buffer, s.port, s.address);
        if (rx.recording) {
          lateness.add(now - s.startedAt - (offsetsMs[k] as number));
          sentInWindow++;
        }
        k++;
      }
      total.sent += k - s.next;
      if (k === last && s.next < last) {
        total.replayed++;
        s.tail = silenceAfter(lastAudio);
        s.tailAt = s.startedAt + (offsetsMs[last - 1] as number) + FRAME_MS;
      }
      s.next = k;
      if (k < last) continue;
      const tail = s.tail as Buffer;
      while (s.tailAt <= now) {
        tail.writeUInt16BE((tail.readUInt16BE(2) + 1) & 0xffff, 2);
        tail.writeUInt32BE((tail.readUInt32BE(4) + 160) >>> 0, 4);
        s.socket.send(tail, s.port, s.address);
        total.sent++;
        if (rx.recording) sentInWindow++;
        if (rx.recording && s.lastSentAt > 0) {
          // RFC 3550 6.4.1 with the send time as the arrival: D = gap - 20 ms of timestamp.
          const gap = now - s.lastSentAt;
          s.sendJitter += (Math.abs(gap - FRAME_MS) - s.sendJitter) / 16;
          sendGaps.add(gap);
          sendJitter.add(s.sendJitter);
        }
        s.lastSentAt = now;
        s.tailAt += FRAME_MS;
      }
      if (!driven && now - s.lastArrival > CALL_OVER_MS) {
        s.sending = false;
        sending[i] = sending[sending.length - 1] as CallerStream;
        sending.pop();
      }
    }
    if (sending.length === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  /** A new call reached socket i: replay the pcap to it from now on. */
  const newCall = (i: number, address: string, port: number, ssrc: number, now: number): CallerStream => {
    const byAddress = bySocket[i] as Map<string, Map<number, CallerStream>>;
    let byPort = byAddress.get(address);
    if (byPort === undefined) {
      byPort = new Map();
      byAddress.set(address, byPort);
    }
    let s = byPort.get(port);
    if (s === undefined) {
      s = { socket: sockets[i] as Socket, address, port, ssrc, startedAt: now, next: 0, tail: undefined, tailAt: 0, sending: false, lastArrival: now, lastSeq: 0, window: 0, over30: false, lastSentAt: 0, sendJitter: 0 };
      byPort.set(port, s);
    }
    s.ssrc = ssrc;
    s.startedAt = now;
    s.next = 0;
    s.tail = undefined;
    total.started++;
    if (!s.sending) {
      s.sending = true;
      sending.push(s);
    }
    timer ??= setInterval(tick, TICK_MS);
    return s;
  };

  const onMessage = (msg: Buffer, address: string, port: number, i: number): void => {
    const now = performance.now();
    if (msg.length < 12 || (msg[0] as number) >> 6 !== 2) return;
    const pt = (msg[1] as number) & 0x7f;
    if (pt >= 72 && pt <= 95) return; // RTCP
    const seq = msg.readUInt16BE(2);
    const ssrc = msg.readUInt32BE(8);
    const known = bySocket[i]?.get(address)?.get(port);
    if (driven) {
      // The far side's stream back through the relay: its SSRC is whatever it sends.
      if (known === undefined || !known.sending) strays++;
      else if (known.ssrc === ssrc) rx.arrival(known, seq, now, false);
      else {
        known.ssrc = ssrc;
        rx.arrival(known, seq, now, true);
      }
      return;
    }
    if (known !== undefined && known.ssrc === ssrc) rx.arrival(known, seq, now, false);
    else rx.arrival(newCall(i, address, port, ssrc, now), seq, now, true);
  };

  // Literal addresses only: no lookup per send.
  const literal = (address: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void): void => cb(null, address, 4);
  const sockets: Socket[] = [];
  let bound = 0;
  for (let i = 0; i < count; i++) {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024, lookup: literal as never });
    bySocket.push(new Map());
    sock.on('message', (msg, rinfo) => onMessage(msg, rinfo.address, rinfo.port, i));
    sock.on('error', (e) => {
      // Send errors (no callback) come here too: count them, keep going.
      total.sendErrors++;
      if (total.sendErrors <= 3) console.error(`rtp caller socket ${firstPort + i}: ${e.message}`);
    });
    sock.bind(firstPort + i, host, () => {
      if (++bound === count) push({ push: 'ready', pcapPackets: last, pcapMs: pcap.durationMs });
    });
    sockets.push(sock);
  }

  /** Driven mode: a stream of 20 ms PCMU silence to address:port from socket i, with its own SSRC. */
  let nextSsrc = 0x10000001;
  const call = (i: number, address: string, port: number): void => {
    const now = performance.now();
    const s = newCall(i, address, port, 0, now);
    const tail = silenceAfter(lastAudio);
    tail.writeUInt32BE(nextSsrc++ >>> 0, 8);
    s.next = last;
    s.tail = tail;
    s.tailAt = now;
    s.lastSentAt = 0;
    s.sendJitter = 0;
  };

  serveRpc({
    call: (req) => {
      if (!driven) throw new Error('call: only in driven mode');
      const i = Number(req['socket'] ?? 0);
      const address = String(req['address']);
      const port = Number(req['port']);
      if (!(i >= 0 && i < count) || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error('call: bad socket or port');
      call(i, address, port);
      return { ok: true };
    },
    'hangup-all': () => {
      for (const s of sending) s.sending = false;
      sending.length = 0;
      for (const byAddress of bySocket) byAddress.clear();
      return { ok: true };
    },
    start: () => {
      lateness.reset();
      sendGaps.reset();
      sendJitter.reset();
      sentInWindow = 0;
      proc.open();
      rx.begin(performance.now());
      return { ok: true };
    },
    stop: () => {
      rx.recording = false;
      proc.close();
      return { ok: true };
    },
    report: (): CallerReport => {
      const p = proc.figures();
      return {
        windowMs: p.wallMs,
        streams: rx.streams,
        packets: rx.packets,
        gapsMs: rx.gaps.summary(),
        gapsOver30: rx.gaps.countAbove(30),
        gapsOver40: rx.gaps.countAbove(40),
        streamsOver30: rx.streamsOver30,
        missing: rx.missing,
        reordered: rx.reordered,
        lossRatio: rx.missing / Math.max(1, rx.packets + rx.missing),
        sendLatenessMs: lateness.summary(),
        packetsSentInWindow: sentInWindow,
        cpuPercentOfOneCore: p.cpuPercentOfOneCore,
        eventLoopDelayMs: p.eventLoopDelayMs,
        streamsStarted: total.started,
        streamsReplayed: total.replayed,
        packetsSent: total.sent,
        sendErrors: total.sendErrors,
        pcapPackets: last,
        pcapMs: pcap.durationMs,
        recvBufferBytes: sockets[0]?.getRecvBufferSize() ?? 0,
        sendGapsMs: sendGaps.summary(),
        sendJitterMs: sendJitter.summary(),
        strays,
      };
    },
    close: () => {
      if (timer !== undefined) clearInterval(timer);
      for (const s of sockets) s.close();
      setImmediate(() => process.exit(0));
      return { ok: true };
    },
  });
}

main();
