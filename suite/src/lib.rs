//! Support shared by the suite's tests and examples (the tests and examples themselves are in
//! the repository's `tests/` and `examples/`; see `Cargo.toml`).
//!
//! [`tls`]: a certificate authority made at run time (`rcgen`) and an HTTPS front on
//! 127.0.0.1 that terminates TLS with it and forwards the bytes to a plain-HTTP server (the
//! testkit's fake vLLM server), recording each handshake.
#![deny(missing_docs)]

pub mod tls {
    //! A test PKI and an HTTPS front for the fake server.

    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::{TcpListener, TcpStream};

    /// A CA made at run time, and a server certificate it signed for `127.0.0.1` and
    /// `localhost`.
    pub struct TestPki {
        /// The CA's certificate, PEM.
        pub ca_pem: String,
        /// The CA's certificate, DER.
        pub ca_der: CertificateDer<'static>,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: Vec<u8>,
    }

    impl TestPki {
        /// A fresh CA (named "vllm-client test CA" and `name`) and server certificate.
        pub fn new(name: &str) -> TestPki {
            let ca_key = KeyPair::generate().expect("a CA key");
            let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(DnType::CommonName, format!("vllm-client test CA {name}"));
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
            let issuer = Issuer::new(ca, ca_key);

            let key = KeyPair::generate().expect("a server key");
            let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
            leaf.subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            leaf.distinguished_name
                .push(DnType::CommonName, "127.0.0.1");
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            leaf.use_authority_key_identifier_extension = true;
            let cert = leaf
                .signed_by(&key, &issuer)
                .expect("the server certificate");
            TestPki {
                ca_pem: ca_cert.pem(),
                ca_der: ca_cert.der().clone(),
                server_chain: vec![cert.der().clone(), ca_cert.der().clone()],
                server_key: key.serialize_der(),
            }
        }

        /// Writes the CA certificate (PEM) to `dir/ca.pem`, for `SSL_CERT_FILE`.
        pub fn write_ca(&self, dir: &Path) -> PathBuf {
            let path = dir.join("ca.pem");
            std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
            path
        }

        fn server_config(&self) -> rustls::ServerConfig {
            // aws-lc-rs, which prefers the post-quantum hybrid X25519MLKEM768: a client that
            // supports it negotiates it, one that does not (ring, OpenSSL 3.0) gets X25519.
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS 1.2 and 1.3")
                .with_no_client_auth()
                .with_single_cert(self.server_chain.clone(), key)
                .expect("the server certificate and key");
            // The fake server behind speaks HTTP/1.1 only.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        }
    }

    /// What one TLS handshake with the front came to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Handshake {
        /// It completed, with this key exchange group (e.g. `"X25519MLKEM768"`).
        Done {
            /// The key exchange group negotiated.
            group: String,
        },
        /// It failed; the server's side of the reason.
        Failed(String),
    }

    /// An HTTPS server on 127.0.0.1 that forwards each connection, once TLS is done, to a
    /// plain-TCP backend. Stops when dropped.
    pub struct HttpsFront {
        addr: SocketAddr,
        handshakes: Arc<Mutex<Vec<Handshake>>>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl HttpsFront {
        /// Starts a front with `pki`'s server certificate before `backend` (e.g. a fake
        /// server's `http://127.0.0.1:port/v1`: its host and port are used).
        pub fn start(pki: &TestPki, backend_url: &str) -> HttpsFront {
            let backend: SocketAddr = backend_url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("a backend URL http://ip:port/…");
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()));
            let std_listener =
                std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
            std_listener.set_nonblocking(true).expect("nonblocking");
            let addr = std_listener.local_addr().expect("local addr");
            let handshakes = Arc::new(Mutex::new(Vec::new()));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let seen = handshakes.clone();
            std::thread::Builder::new()
                .name("https-front".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(std_listener).expect("listener");
                        let serve = async {
                            loop {
                                let Ok((tcp, _)) = listener.accept().await else {
                                    continue;
                                };
                                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                                tokio::spawn(forward(acceptor, tcp, backend, seen));
                            }
                        };
                        tokio::select! {
                            _ = serve => {}
                            _ = stopped => {}
                        }
                    });
                })
                .expect("spawn the front's thread");
            HttpsFront {
                addr,
                handshakes,
                stop: Some(stop),
            }
        }

        /// `https://127.0.0.1:<port>/v1`.
        pub fn base_url(&self) -> String {
            format!("https://{}/v1", self.addr)
        }

        /// Every handshake so far, in order.
        pub fn handshakes(&self) -> Vec<Handshake> {
            self.handshakes.lock().expect("handshakes").clone()
        }
    }

    impl Drop for HttpsFront {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    async fn forward(
        acceptor: tokio_rustls::TlsAcceptor,
        tcp: TcpStream,
        backend: SocketAddr,
        seen: Arc<Mutex<Vec<Handshake>>>,
    ) {
        let mut tls = match acceptor.accept(tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                seen.lock()
                    .expect("handshakes")
                    .push(Handshake::Failed(e.to_string()));
                return;
            }
        };
        let group = tls
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default();
        seen.lock()
            .expect("handshakes")
            .push(Handshake::Done { group });
        if let Ok(mut plain) = TcpStream::connect(backend).await {
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        }
    }
}
