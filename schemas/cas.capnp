@0xa088cf643ab12ca6;
# Content-addressed blob store, scoped per universe. Errors travel as
# described in caps.capnp (`aos.<Code>: message`).

$import "/capnp/c++.capnp".namespace("aos::rpc");
using Caps = import "caps.capnp";

interface Cas extends(Caps.Held) {
  # Addresses are text "sha256:<64 lowercase hex>", the SHA-256 of the bytes.
  # A blob stored in one universe is invisible from another.

  put @0 (data :Data) -> (hash :Text);
  # Store bytes; returns their address. Idempotent. The blob is durable when
  # the call returns. Errors: PermissionDenied (read-only), PayloadTooLarge
  # (larger than `maxMessageBytes`; use `upload`).

  get @1 (hash :Text) -> (data :Data);
  # Read a whole blob. The kernel re-hashes the bytes before answering.
  # Errors: InvalidArgument (bad address text), BlobNotFound, CorruptBlob,
  # PayloadTooLarge (blob bigger than `maxMessageBytes`; use `read`).

  has @2 (hash :Text) -> (present :Bool);
  # Errors: InvalidArgument.

  stat @3 (hash :Text) -> (size :UInt64);
  # Size in bytes. Errors: InvalidArgument, BlobNotFound.

  upload @4 () -> (writer :BlobWriter);
  # Start a chunked upload for blobs larger than one message.
  # Errors: PermissionDenied (read-only).

  read @5 (hash :Text, offset :UInt64, length :UInt32) -> (data :Data);
  # Read part of a blob: at most `length` bytes (and at most
  # `maxMessageBytes`) from `offset`; an empty result means end of blob. The
  # whole blob is verified against its address before any part is served.
  # Errors: InvalidArgument, BlobNotFound, CorruptBlob.

  readOnly @6 () -> (cas :Cas, revoker :Caps.Revoker);
  # Attenuate: a capability on the same universe that can get/has/stat/read
  # but not put or upload. Errors: Revoked.
}

interface BlobWriter {
  # One chunked upload. Chunks are appended in call order. Dropping the
  # writer without commit discards what was written.

  write @0 (chunk :Data) -> ();
  # Append a chunk (at most `maxMessageBytes`). Errors: PayloadTooLarge (the
  # chunk, or the blob past `maxBlobBytes`), Protocol (after commit).

  commit @1 (expectedHash :Text) -> (hash :Text, size :UInt64);
  # Finish: hash the bytes, store them, return the address. If
  # `expectedHash` is not empty and differs, nothing is stored and the call
  # fails with CorruptBlob. Errors: CorruptBlob, Protocol (committed twice),
  # Revoked.
}
