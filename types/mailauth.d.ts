// mailauth's DKIM signer reads the keys from `signatureData` only (lib/dkim/dkim-signer.js destructures
// canonicalization, algorithm, signTime, headerList, signatureData, …), but its .d.ts requires a top-level
// signingDomain/selector/privateKey, which the signer ignores. This overload is the call the signer takes.
import type { DKIMSignOptions, DKIMSignResult, MessageInput } from 'mailauth';

declare module 'mailauth/lib/dkim/sign.js' {
  export function dkimSign(
    input: MessageInput,
    options: Omit<DKIMSignOptions, 'signingDomain' | 'selector' | 'privateKey' | 'signatureData'> & { signatureData: DKIMSignOptions[] },
  ): Promise<DKIMSignResult>;
}
