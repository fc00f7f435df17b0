//! The protobuf codec of crow's services: prost's, except that a message that does not parse (bytes that
//! are not protobuf, a string field that is not UTF-8, nesting past prost's limit) is `INVALID_ARGUMENT`
//! with one fixed message. prost's own error is `INTERNAL` and spells out message and field names.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// A [`Codec`] for `crow.v1` messages (named by the generated clients and servers).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SanitizingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SanitizingDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// prost's decoder with its errors replaced by [`malformed`].
#[derive(Debug)]
pub struct SanitizingDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for SanitizingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| {
            tracing::debug!(error = %e.message(), "malformed protobuf message");
            malformed()
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status of a message that does not parse.
pub fn malformed() -> Status {
    Status::invalid_argument(
        "message is not valid protobuf for this method (or a string is not UTF-8)",
    )
}
