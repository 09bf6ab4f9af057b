//! TLS under [`Http1`](crate::Http1): the backend the features chose, and the handshake.
//!
//! `native-tls` wins when it is on (it was asked for: it is never on by default); otherwise
//! rustls with `vllm-client-tls`'s configuration (its crypto provider, the OS trust store);
//! without a TLS feature an `https` URL is refused with [`NO_TLS`].

use std::io;

use futures_util::io::{AsyncRead, AsyncWrite};
use surf::Url;

pub(crate) use vllm_client_runner::NO_TLS;

/// A connection that is either plain or TLS, read and written the same way.
pub(crate) trait Conn: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Conn for T {}

/// The TLS backend of an [`Http1`](crate::Http1).
#[derive(Clone)]
pub(crate) enum Tls {
    /// No TLS feature: `https` is refused.
    #[allow(dead_code)] // only constructed without a TLS feature
    None,
    /// rustls, with this configuration.
    #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
    Rustls(futures_rustls::TlsConnector),
    /// native-tls, with this connector.
    #[cfg(feature = "native-tls")]
    Native(std::sync::Arc<async_native_tls::TlsConnector>),
}

impl Tls {
    /// The backend the crate's features chose.
    pub(crate) fn from_features() -> Tls {
        #[cfg(feature = "native-tls")]
        return Tls::Native(std::sync::Arc::new(async_native_tls::TlsConnector::new()));
        #[cfg(all(
            not(feature = "native-tls"),
            any(feature = "rustls", feature = "rustls-ring")
        ))]
        return Tls::Rustls(futures_rustls::TlsConnector::from(std::sync::Arc::new(
            vllm_client_tls::client_config(&[b"http/1.1"]),
        )));
        #[allow(unreachable_code)]
        Tls::None
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Tls::None => "none",
            #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
            Tls::Rustls(_) => "rustls",
            #[cfg(feature = "native-tls")]
            Tls::Native(_) => "native-tls",
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        !matches!(self, Tls::None)
    }

    /// The TLS handshake with the URL's host over `tcp`.
    #[allow(unused_variables)]
    pub(crate) async fn connect<S>(&self, url: &Url, tcp: S) -> io::Result<Box<dyn Conn>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let host = url
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL has no host"))?;
        match self {
            Tls::None => Err(io::Error::new(io::ErrorKind::Unsupported, NO_TLS)),
            #[cfg(any(feature = "rustls", feature = "rustls-ring"))]
            Tls::Rustls(connector) => {
                use surf::http::url::Host;
                use vllm_client_tls::rustls::pki_types::ServerName;
                let name = match host {
                    Host::Domain(d) => ServerName::try_from(d.to_owned())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                    Host::Ipv4(ip) => ServerName::from(std::net::IpAddr::V4(ip)),
                    Host::Ipv6(ip) => ServerName::from(std::net::IpAddr::V6(ip)),
                };
                Ok(Box::new(connector.connect(name, tcp).await?))
            }
            #[cfg(feature = "native-tls")]
            Tls::Native(connector) => {
                use surf::http::url::Host;
                let name = match host {
                    Host::Domain(d) => d.to_owned(),
                    Host::Ipv4(ip) => ip.to_string(),
                    Host::Ipv6(ip) => ip.to_string(),
                };
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok(Box::new(stream))
            }
        }
    }
}
