// What @types/node-forge lacks for lab/ca.ts, which signs certificates with keys forge cannot hold (ECDSA):
// - `pki.getTBSCertificate`, exported by forge (lib/x509.js) and used by its own `cert.sign`;
// - the options object of `asn1.fromDer` (forge >= 0.10: strict, parseAllBytes, decodeBitStrings); the
//   declaration still has only the old boolean `strict`.
export {};

declare module 'node-forge' {
  namespace pki {
    function getTBSCertificate(cert: Certificate): asn1.Asn1;
  }
  namespace asn1 {
    function fromDer(bytes: Bytes | util.ByteBuffer, options?: { strict?: boolean; parseAllBytes?: boolean; decodeBitStrings?: boolean }): Asn1;
  }
}
