//! An HTTP header.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Carrier, StampError};
use crate::incoming::Incoming;
use crate::lineage::Lineage;

/// The HTTP header that carries the lineage between HTTP hops.
pub const HTTP_HEADER: &str = "x-loop-guard";

/// An HTTP header (default [`HTTP_HEADER`], `x-loop-guard`): read from API
/// Gateway, Function URL and ALB events (only when the layer trusts HTTP
/// sources), written by [`HttpStampLayer`](crate::source::http::HttpStampLayer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    name: HeaderName,
}

impl HttpHeader {
    /// A carrier under `name`.
    pub fn new(name: HeaderName) -> Self {
        HttpHeader { name }
    }

    /// The header name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl Default for HttpHeader {
    fn default() -> Self {
        HttpHeader::new(HeaderName::from_static(HTTP_HEADER))
    }
}

impl Carrier<HeaderMap> for HttpHeader {
    fn read<'a>(&self, headers: &'a HeaderMap, incoming: &mut Incoming<'a>) {
        for value in headers.get_all(&self.name) {
            if let Ok(text) = value.to_str() {
                incoming.read_lineage_value(text, "http header");
            }
        }
    }

    fn write(&self, headers: &mut HeaderMap, lineage: &Lineage) -> Result<(), StampError> {
        let value =
            HeaderValue::from_str(lineage.encode().as_str()).map_err(|e| StampError::Invalid {
                reason: e.to_string(),
            })?;
        headers.insert(self.name.clone(), value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;

    #[test]
    fn replaces_and_reads_back() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut headers = HeaderMap::new();
        headers.append(HTTP_HEADER, HeaderValue::from_static("v1.1.00000003-9"));
        headers.append(HTTP_HEADER, HeaderValue::from_static("v1.1.00000003-8"));
        HttpHeader::default().write(&mut headers, &lineage).unwrap();
        assert_eq!(headers.get_all(HTTP_HEADER).iter().count(), 1);
        let mut incoming = Incoming::new(EventSource::Http);
        HttpHeader::default().read(&headers, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);
    }
}
