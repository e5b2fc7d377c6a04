//! Compression detection and bounded decompression.
//!
//! Consumes the raw bytes of one S3 object (any [`Read`]) and produces a [`Decoded`] stream: a
//! [`BufRead`] over the decompressed bytes. gzip (including multi-member files, as written by many
//! log shippers) and zstd are detected by their magic bytes unless the configuration forces a kind.
//!
//! Two guarantees callers rely on:
//! - reading more than `max_decompressed_bytes` fails with an [`io::Error`] whose inner error is
//!   [`DecodeError::TooLarge`] (see [`too_large_cap`]), so a decompression bomb costs at most the cap;
//! - corrupt or truncated compressed data fails with [`io::ErrorKind::InvalidData`], whatever the
//!   decompressor reported, while errors of the underlying reader (network, S3) keep their own kind.

use std::io::{self, BufRead, BufReader, Read};

use s3_sentinel_api::config::ObjectCompression;

/// Size of the buffer between the decompressor and the parsers.
pub const DECODED_BUFFER_BYTES: usize = 64 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Why an object could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decompressed object is larger than the configured cap.
    #[error("decompressed object exceeds the cap of {cap} bytes")]
    TooLarge {
        /// The configured `max_decompressed_bytes`.
        cap: u64,
    },
    /// Reading the start of the object (to detect its compression) failed.
    #[error("unable to read the start of the object")]
    Read(#[source] io::Error),
    /// The decompressor could not be set up.
    #[error("failed to initialise the {kind} decoder")]
    Init {
        /// The compression kind.
        kind: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// If `err` was produced by the decompression cap, the cap in bytes.
pub fn too_large_cap(err: &io::Error) -> Option<u64> {
    match err.get_ref()?.downcast_ref::<DecodeError>()? {
        DecodeError::TooLarge { cap } => Some(*cap),
        _ => None,
    }
}

/// An error of the underlying reader, tagged so it is not mistaken for corrupt compressed data when it
/// comes back out of the decompressor.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct SourceError(io::Error);

/// Wraps the raw object reader and tags its errors with [`SourceError`].
struct TagSource<R>(R);

impl<R: Read> Read for TagSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let kind = e.kind();
            io::Error::new(kind, SourceError(e))
        })
    }
}

/// Maps errors coming out of a decompressor: source errors get their original form back, anything else
/// is the decompressor complaining about the data and becomes [`io::ErrorKind::InvalidData`].
struct NormaliseErrors<R> {
    inner: R,
    kind: &'static str,
}

impl<R: Read> Read for NormaliseErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| normalise(e, self.kind))
    }
}

fn normalise(err: io::Error, kind: &'static str) -> io::Error {
    if err.kind() == io::ErrorKind::Interrupted {
        return err;
    }
    if err.get_ref().is_some_and(|inner| inner.is::<SourceError>()) {
        return match err.into_inner().map(|inner| inner.downcast::<SourceError>()) {
            Some(Ok(source)) => source.0,
            Some(Err(other)) => io::Error::other(other),
            None => io::Error::other("source error"),
        };
    }
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt {kind} data: {err}"))
}

/// Counts decompressed bytes and fails once more than `cap` bytes have come out.
struct Capped {
    inner: Box<dyn Read + Send>,
    count: u64,
    cap: u64,
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for at most one byte beyond the cap: enough to know it was exceeded.
        let room = self.cap.saturating_sub(self.count).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if self.count + n as u64 > self.cap {
            self.count = self.cap;
            return Err(io::Error::other(DecodeError::TooLarge { cap: self.cap }));
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The decompressed bytes of one object, buffered ([`DECODED_BUFFER_BYTES`]) and capped.
pub struct Decoded {
    reader: BufReader<Capped>,
    compression: &'static str,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("compression", &self.compression)
            .field("decoded_bytes", &self.decoded_bytes())
            .finish()
    }
}

impl Decoded {
    /// The compression that was undone: `"gzip"`, `"zstd"` or `"none"` (a bounded metric label).
    pub fn compression(&self) -> &'static str {
        self.compression
    }

    /// Decompressed bytes produced so far (including bytes still in the buffer).
    pub fn decoded_bytes(&self) -> u64 {
        self.reader.get_ref().count
    }
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl BufRead for Decoded {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt);
    }
}

/// Opens `reader` for decoding: detects (or applies the configured) compression and caps the output at
/// `max_decompressed_bytes`.
///
/// Only the first four bytes are read here; everything else happens as the result is read.
pub fn open_decoded<R: Read + Send + 'static>(
    reader: R,
    compression: ObjectCompression,
    max_decompressed_bytes: u64,
) -> Result<Decoded, DecodeError> {
    let mut source = TagSource(reader);
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match source.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecodeError::Read(normalise(e, "none"))),
        }
    }
    let head = &magic[..got];
    let kind = match compression {
        ObjectCompression::Auto if head.starts_with(&GZIP_MAGIC) => "gzip",
        ObjectCompression::Auto if head.starts_with(&ZSTD_MAGIC) => "zstd",
        ObjectCompression::Auto | ObjectCompression::None => "none",
        ObjectCompression::Gzip => "gzip",
        ObjectCompression::Zstd => "zstd",
    };
    let chained = io::Cursor::new(magic).take(got as u64).chain(source);
    let inner: Box<dyn Read + Send> = match kind {
        "gzip" => Box::new(NormaliseErrors {
            inner: flate2::read::MultiGzDecoder::new(chained),
            kind,
        }),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(chained)
                .map_err(|source| DecodeError::Init { kind, source })?;
            Box::new(NormaliseErrors { inner: decoder, kind })
        }
        _ => Box::new(NormaliseErrors { inner: chained, kind }),
    };
    let capped = Capped {
        inner,
        count: 0,
        cap: max_decompressed_bytes,
    };
    Ok(Decoded {
        reader: BufReader::with_capacity(DECODED_BUFFER_BYTES, capped),
        compression: kind,
    })
}
