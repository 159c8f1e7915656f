//! A document body handed to actix-http in slices, so a large answer never grows the
//! connection's write buffer.
//!
//! actix-http copies a response body into the connection's write buffer before writing
//! it. Given a 1 MB `Bytes` in one piece, that buffer grows to 1 MB, and because it is
//! then larger than what the connection keeps (128 KiB), it is freed after the answer
//! and allocated again for the next one: every 1 MB answer paid a fresh allocation, its
//! page faults and a copy into cold memory. Slices of [`SLICE`] keep the buffer under
//! that limit, so it is reused and stays in the CPU's cache; the slices are `Bytes`
//! views of the document's one copy (no copy of our own). `Content-Length` is still the
//! whole size.

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes per slice: with actix-http's 32 KiB write-buffer target, at most about 96 KiB
/// is buffered per connection, under the 128 KiB it keeps between answers.
pub(super) const SLICE: usize = 64 * 1024;

/// A body of one known size, yielded [`SLICE`] bytes at a time.
pub(super) struct Sliced {
    rest: Bytes,
    size: u64,
}

impl Sliced {
    /// `body` as slices; `Content-Length` is its length.
    pub(super) fn new(body: Bytes) -> Self {
        let size = body.len() as u64;
        Self { rest: body, size }
    }
}

impl MessageBody for Sliced {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = this.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(this.rest.split_to(n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_rt::test]
    async fn yields_the_whole_body_in_order_with_its_size() {
        let body: Bytes = (0..(SLICE * 3 + 17)).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        let sliced = Sliced::new(body.clone());
        assert_eq!(sliced.size(), BodySize::Sized(body.len() as u64));
        assert_eq!(to_bytes(sliced).await.ok(), Some(body));
    }

    #[actix_rt::test]
    async fn slices_are_at_most_one_slice_long() {
        let mut sliced = Sliced::new(Bytes::from(vec![7u8; SLICE * 2 + 1]));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut lens = Vec::new();
        while let Poll::Ready(Some(Ok(b))) = Pin::new(&mut sliced).poll_next(&mut cx) {
            lens.push(b.len());
        }
        assert_eq!(lens, vec![SLICE, SLICE, 1]);
    }
}
