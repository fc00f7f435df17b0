//! TLS as operators deploy it: a server certificate signed by the store's own CA, camera daemons that
//! may have to present client certificates (mTLS), and the faults people actually hit — a client that
//! trusts another CA, a plaintext client on a TLS port (and the reverse), an expired certificate, a key
//! that belongs to another certificate. Certificates are made fresh for each run with rcgen.

use std::path::{Path, PathBuf};

use crow::client::{self, Credentials, StreamOptions};
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::GetSummaryRequest;
use crow::server::{RunningServer, ServeOptions};
use crow::tls::{ClientTls, ServerTls, TlsConfig};
use crow::{Crow, PipelineConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::common;

/// A CA and what it signs, written as PEM files into `dir`.
pub(crate) struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: dir.to_owned(),
            ca,
        };
        std::fs::write(pki.path(&format!("{name}-ca.crt")), pki.ca.pem()).unwrap();
        pki
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Signs a leaf certificate for `names`; `expired` makes one whose validity ended in 2021.
    /// Returns (cert path, key path).
    pub(crate) fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, file.to_owned());
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &*self.ca).unwrap();
        let (cert_path, key_path) = (
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}

async fn tls_server(crow: &Crow, tls: TlsConfig) -> RunningServer {
    let tls = ServerTls::load(&tls).unwrap().expect("TLS configured");
    crow::server::spawn_with(
        crow.pipeline().clone(),
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(crow::auth::Authenticator::disabled()).with_tls(tls),
    )
    .await
    .unwrap()
}

fn trusting(ca_pem: &str) -> Credentials {
    Credentials::new(None, None).with_tls(ClientTls::default().with_ca_pem(ca_pem))
}

async fn summary(url: &str, credentials: Credentials) -> Result<u64, String> {
    let channel = client::channel(url, credentials)
        .await
        .map_err(|e| e.to_string())?;
    InteractionServiceClient::new(channel)
        .get_summary(GetSummaryRequest {
            organization_id: "shop".into(),
        })
        .await
        .map(|r| r.into_inner().total)
        .map_err(|s| client::ClientError::Status(s).to_string())
}

#[tokio::test]
async fn tls_streams_work_and_untrusted_plaintext_expired_and_mismatched_certificates_fail_clearly()
{
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "store");
    let other = Pki::new(dir.path(), "other");
    let (cert, key) = pki.leaf("server", &["localhost", "127.0.0.1"], false);
    let crow = Crow::builder()
        .temporary()
        .pipeline_config(PipelineConfig::default())
        .build()
        .await
        .unwrap();
    let server = tls_server(
        &crow,
        TlsConfig {
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            ..TlsConfig::default()
        },
    )
    .await;
    let url = server.url();
    assert!(url.starts_with("https://localhost:"), "{url}");

    // A camera that trusts the store's CA streams real video over TLS.
    let mut options = StreamOptions::new("shop", "door");
    options.max_frames = Some(6);
    let report = client::stream_media_with(
        &url,
        trusting(&pki.ca_pem()),
        common::data("vtest.avi"),
        &options,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.frames_sent, 6);
    assert_eq!(report.acked, 6);
    assert!(report.accepted >= 1, "{report:?}");

    // A client that trusts another CA is told the server's certificate is not signed by its CA.
    let untrusted = summary(&url, trusting(&other.ca_pem())).await.unwrap_err();
    assert!(
        untrusted.contains("not signed by a CA this client trusts"),
        "{untrusted}"
    );
    // https:// without a CA says what to pass.
    let no_ca = summary(&url, Credentials::new(None, None))
        .await
        .unwrap_err();
    assert!(no_ca.contains("--ca"), "{no_ca}");
    // A plaintext client on the TLS port is told to use https://.
    let plaintext_url = format!("http://{}", server.local_addr());
    let plaintext = summary(&plaintext_url, Credentials::new(None, None))
        .await
        .unwrap_err();
    assert!(plaintext.contains("https://"), "{plaintext}");

    // The reverse: a TLS client against a plaintext server.
    let plain = crow::server::spawn(
        crow.pipeline().clone(),
        "127.0.0.1:0".parse().unwrap(),
        crow::auth::Authenticator::disabled(),
    )
    .await
    .unwrap();
    let tls_to_plain = summary(
        &format!("https://localhost:{}", plain.local_addr().port()),
        trusting(&pki.ca_pem()),
    )
    .await
    .unwrap_err();
    assert!(
        tls_to_plain.contains("does not speak TLS"),
        "{tls_to_plain}"
    );

    // Start-up refuses an expired certificate and a key of another certificate, naming the fault.
    let (expired, expired_key) = pki.leaf("expired", &["localhost"], true);
    let err = ServerTls::load(&TlsConfig {
        cert: Some(expired.clone()),
        key: Some(expired_key),
        ..TlsConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tls.cert") && err.contains("expired on"),
        "{err}"
    );
    let (_, stranger_key) = pki.leaf("stranger", &["localhost"], false);
    let err = ServerTls::load(&TlsConfig {
        cert: Some(cert.clone()),
        key: Some(stranger_key),
        ..TlsConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tls.key") && err.contains("cannot be used with tls.cert"),
        "{err}"
    );
    let err = ServerTls::load(&TlsConfig {
        cert: Some(cert.clone()),
        ..TlsConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("tls.key is required"), "{err}");
    // A client given an expired CA file is told so before it connects.
    let err = ClientTls::default().with_ca_file(&expired).unwrap_err();
    assert!(err.to_string().contains("expired on"), "{err}");

    plain.shutdown().await;
    server.shutdown().await;
    crow.shutdown().await;
}

#[tokio::test]
async fn with_client_certificates_required_a_client_without_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "store");
    let other = Pki::new(dir.path(), "other");
    let (cert, key) = pki.leaf("server", &["localhost"], false);
    let (camera_cert, camera_key) = pki.leaf("camera", &["camera-1"], false);
    let (rogue_cert, rogue_key) = other.leaf("rogue", &["camera-9"], false);
    let crow = Crow::builder().temporary().build().await.unwrap();
    let server = tls_server(
        &crow,
        TlsConfig {
            cert: Some(cert),
            key: Some(key),
            client_ca: Some(pki.path("store-ca.crt")),
            ..TlsConfig::default()
        },
    )
    .await;
    let url = server.url();

    let without = summary(&url, trusting(&pki.ca_pem())).await.unwrap_err();
    assert!(
        without.contains("requires a client certificate"),
        "{without}"
    );

    let with_rogue = Credentials::new(None, None).with_tls(
        ClientTls::default()
            .with_ca_pem(pki.ca_pem())
            .with_identity_files(&rogue_cert, &rogue_key)
            .unwrap(),
    );
    let rogue = summary(&url, with_rogue).await.unwrap_err();
    assert!(
        rogue.contains("refused this client's certificate"),
        "{rogue}"
    );

    let camera = Credentials::new(None, None).with_tls(
        ClientTls::default()
            .with_ca_pem(pki.ca_pem())
            .with_identity_files(&camera_cert, &camera_key)
            .unwrap(),
    );
    assert_eq!(summary(&url, camera).await, Ok(0));

    server.shutdown().await;
    crow.shutdown().await;
}
