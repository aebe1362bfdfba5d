// @types/dns-packet's OptAnswer types `options` as five known option codes only (no RFC 8914 Extended DNS
// Error, code 15) and requires the decode-only `flag_do` and `ednsVersion`; dns-packet's encoder writes any
// `{ code, data }` option and defaults ednsVersion to 0. This overload of `encode` takes such an OPT record
// (RFC 6891 §6.1.2) in the additional section.
import type { Answer, Packet } from 'dns-packet';

declare module 'dns-packet' {
  interface EncodableOpt {
    name: '.';
    type: 'OPT';
    udpPayloadSize: number;
    extendedRcode: number;
    ednsVersion?: number;
    flags: number;
    options: { code: number; data: Buffer }[];
  }
  interface EncodablePacket extends Omit<Packet, 'additionals'> {
    additionals?: (Answer | EncodableOpt)[];
  }
  function encode(packet: EncodablePacket, buf?: Buffer, offset?: number): Buffer;
}
