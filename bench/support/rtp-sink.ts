/**
 * The RTP sink of the SIPp load bench, run as its own process (forked by bench/sipp-load.ts) so
 * its timestamps do not share an event loop with the load generator's bookkeeping. It binds a
 * few UDP ports on 127.0.0.1, which the calls' SDP offers point at, and for every SSRC records
 * the arrival time of each packet (performance.now(), monotonic, sub-µs resolution) during a
 * measurement window set by the parent: inter-packet gaps, sequence losses, reorders, and
 * whether the payload is audio or digital silence.
 *
 * With a return interval, the sink also sends one RTP packet back to each stream's source every
 * that many ms (a sparse caller->server stream): the server latches it and, with the engine's
 * connected sockets, sends from a connected socket, as in a real call where the far end talks.
 *
 *   argv: <host> <firstPort> <portCount> [returnEveryMs=0]
 */
import { createSocket, type Socket } from 'node:dgram';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Histogram, type HistogramSummary } from './histogram.js';
import { push, serveRpc } from './rpc.js';

export interface SinkReport {
  windowMs: number;
  streams: number;
  packets: number;
  packetsPerSecond: number;
  /** Packets whose payload is not all G.711 silence (prompt audio). */
  audioPackets: number;
  gapsMs: HistogramSummary;
  /** Gaps outside 20 ms +/- 5 ms. */
  gapsOutside15to25: number;
  /** Streams that had at least one gap above 25 ms. */
  streamsWithLateGap: number;
  /** Streams that had at least one gap above 30 ms. */
  streamsOver30: number;
  /** Gaps above 30 ms and above 40 ms. */
  gapsOver30: number;
  gapsOver40: number;
  missing: number;
  reordered: number;
  /** missing / (packets + missing). */
  lossRatio: number;
  sinkEventLoopDelayMs: { p50: number; p99: number; max: number };
  sinkCpuPercentOfOneCore: number;
  /** Packets received over the whole life of the sink (outside windows too). */
  totalPackets: number;
  /**
   * RFC 3550 interarrival jitter (8 kHz RTP clock: PCMU/PCMA), each in-order packet's running
   * estimate of its stream, in the window.
   */
  jitterMs: HistogramSummary;
}

interface StreamState {
  last: number;
  seq: number;
  /** Window generation this stream last counted in. */
  gen: number;
  lateGap: boolean;
  over30: boolean;
  /** RTP timestamp of the last in-order packet and the stream's RFC 3550 jitter estimate (ms). */
  ts: number;
  jitter: number;
}

const PCMU_SILENCE = Buffer.alloc(160, 0xff);
const PCMA_SILENCE = Buffer.alloc(160, 0xd5);
const RETURN_TICK_MS = 20;

/** Where to send a stream's return packets: the server port it comes from, from the sink socket it reaches. */
interface ReturnPath {
  socket: number;
  address: string;
  port: number;
  /** This stream's own packet: its sequence and timestamp move by one frame per send, so the far end can count losses. */
  packet: Buffer;
}

/** A PCMU silence packet for one stream's return sends (the server only parses the header and latches). */
function returnPacket(): Buffer {
  const b = Buffer.alloc(172, 0xff);
  b[0] = 0x80;
  b[1] = 0;
  b.writeUInt32BE(0x5eed5eed, 8);
  return b;
}

function main(): void {
  const [host = '127.0.0.1', firstPortArg = '44900', countArg = '8', returnArg = '0'] = process.argv.slice(2);
  const firstPort = Number(firstPortArg);
  const count = Number(countArg);
  const returnEveryMs = Number(returnArg);
  const returns: ReturnPath[] = [];
  const returnOf = new Set<number>();

  const gaps = new Histogram();
  const jitter = new Histogram();
  const streams = new Map<number, StreamState>();
  const eld = monitorEventLoopDelay({ resolution: 1 });
  let recording = false;
  let gen = 0;
  let windowStart = 0;
  let windowEnd = 0;
  let cpu0 = process.cpuUsage();
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  let packets = 0;
  let audio = 0;
  let missing = 0;
  let reordered = 0;
  let outside = 0;
  let streamsInWindow = 0;
  let lateStreams = 0;
  let streams30 = 0;
  let totalPackets = 0;

  const onMessage = (msg: Buffer, rinfo: { address: string; port: number }, socket: number): void => {
    const now = performance.now();
    totalPackets++;
    if (msg.length < 12) return;
    const seq = msg.readUInt16BE(2);
    const ssrc = msg.readUInt32BE(8);
    if (returnEveryMs > 0 && !returnOf.has(ssrc)) {
      returnOf.add(ssrc);
      const packet = returnPacket();
      packet.writeUInt32BE((0x5eed0000 + returns.length) >>> 0, 8);
      returns.push({ socket, address: rinfo.address, port: rinfo.port, packet });
    }
    let s = streams.get(ssrc);
    if (s === undefined) {
      s = { last: now, seq, gen: -1, lateGap: false, over30: false, ts: msg.readUInt32BE(4), jitter: 0 };
      streams.set(ssrc, s);
      if (!recording) return;
    }
    if (!recording) {
      s.last = now;
      s.seq = seq;
      s.ts = msg.readUInt32BE(4);
      return;
    }
    if (s.gen !== gen) {
      s.gen = gen;
      s.lateGap = false;
      s.over30 = false;
      streamsInWindow++;
    }
    packets++;
    const pt = msg[1]! & 0x7f;
    const silence = pt === 8 ? PCMA_SILENCE : PCMU_SILENCE;
    if (msg.length < 172 || silence.compare(msg, 12, 172) !== 0) audio++;
    const diff = (seq - s.seq) & 0xffff;
    if (diff === 1 || (diff > 1 && diff < 3000)) {
      // In order (maybe after a loss): the gap to the previous packet of this stream.
      missing += diff - 1;
      const gap = now - s.last;
      if (s.last >= windowStart) {
        gaps.add(gap);
        if (gap < 15 || gap > 25) outside++;
        if (gap > 25 && !s.lateGap) {
          s.lateGap = true;
          lateStreams++;
        }
        if (gap > 30 && !s.over30) {
          s.over30 = true;
          streams30++;
        }
        // RFC 3550 6.4.1: D = arrival gap - timestamp gap, J += (|D| - J) / 16.
        const ts = msg.readUInt32BE(4);
        const d = gap - ((ts - s.ts) | 0) / 8;
        s.jitter += (Math.abs(d) - s.jitter) / 16;
        jitter.add(s.jitter);
      }
      s.last = now;
      s.seq = seq;
      s.ts = msg.readUInt32BE(4);
    } else {
      reordered++; // duplicate, late or a restart of the sequence; not a gap sample
    }
  };

  const sockets: Socket[] = [];
  let bound = 0;
  for (let i = 0; i < count; i++) {
    const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    sock.on('message', (msg, rinfo) => onMessage(msg, rinfo, i));
    sock.on('error', (e) => {
      console.error(`rtp sink socket error: ${e.message}`);
      process.exit(2);
    });
    sock.bind(firstPort + i, host, () => {
      if (++bound === count) push({ push: 'ready' });
    });
    sockets.push(sock);
  }

  if (returnEveryMs > 0) {
    // Spread over the interval: each 20 ms tick serves the next slice of the streams.
    let cursor = 0;
    setInterval(() => {
      const n = Math.ceil((returns.length * RETURN_TICK_MS) / returnEveryMs);
      for (let k = 0; k < n && returns.length > 0; k++) {
        cursor = cursor % returns.length;
        const r = returns[cursor++] as ReturnPath;
        const pkt = r.packet;
        pkt.writeUInt16BE((pkt.readUInt16BE(2) + 1) & 0xffff, 2);
        pkt.writeUInt32BE((pkt.readUInt32BE(4) + 160) >>> 0, 4);
        sockets[r.socket]?.send(pkt, r.port, r.address);
      }
    }, RETURN_TICK_MS).unref();
  }

  serveRpc({
    start: () => {
      gaps.reset();
      jitter.reset();
      packets = audio = missing = reordered = outside = streamsInWindow = lateStreams = streams30 = 0;
      gen++;
      recording = true;
      windowStart = performance.now();
      windowEnd = 0;
      eld.reset();
      eld.enable();
      cpu0 = process.cpuUsage();
      return { ok: true };
    },
    stop: () => {
      if (recording) {
        recording = false;
        windowEnd = performance.now();
        cpu = process.cpuUsage(cpu0);
        eld.disable();
      }
      return { ok: true };
    },
    report: (): SinkReport => {
      const windowMs = (windowEnd || performance.now()) - windowStart;
      return {
        windowMs,
        streams: streamsInWindow,
        packets,
        packetsPerSecond: packets / (windowMs / 1000),
        audioPackets: audio,
        gapsMs: gaps.summary(),
        gapsOutside15to25: outside,
        streamsWithLateGap: lateStreams,
        streamsOver30: streams30,
        gapsOver30: gaps.countAbove(30),
        gapsOver40: gaps.countAbove(40),
        missing,
        reordered,
        lossRatio: missing / Math.max(1, packets + missing),
        // The histogram counts the 1 ms timer period in every sample: take it out.
        sinkEventLoopDelayMs: { p50: Math.max(0, eld.percentile(50) / 1e6 - 1), p99: Math.max(0, eld.percentile(99) / 1e6 - 1), max: Math.max(0, eld.max / 1e6 - 1) },
        sinkCpuPercentOfOneCore: (100 * (cpu.user + cpu.system)) / 1000 / Math.max(1, windowMs),
        totalPackets,
        jitterMs: jitter.summary(),
      };
    },
    close: () => {
      for (const s of sockets) s.close();
      setImmediate(() => process.exit(0));
      return { ok: true };
    },
  });
}

main();
