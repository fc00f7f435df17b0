//! Authentication on every service: a token matrix where only the valid token passes, and organization
//! isolation on every RPC that names an organization, with the same answer whether the other
//! organization's resource exists or not.

use crow::auth::{mint_hs256, AuthConfig, Authenticator, Claims};
use crow::client::{self, AuthChannel, Credentials};
use crow::proto::analysis_service_client::AnalysisServiceClient;
use crow::proto::catalog_service_client::CatalogServiceClient;
use crow::proto::ingest_service_client::IngestServiceClient;
use crow::proto::interaction_service_client::InteractionServiceClient;
use crow::proto::*;
use crow::PipelineConfig;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::common::TestServer;

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

fn config() -> AuthConfig {
    AuthConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(orgs: &[&str]) -> Claims {
    Claims {
        sub: "tester".into(),
        orgs: orgs.iter().map(|o| o.to_string()).collect(),
        role: "admin".into(),
        exp: now() + 600,
        nbf: Some(now() - 10),
        iat: Some(now()),
        iss: Some("crow".into()),
        aud: Some("crow".into()),
    }
}

fn hs256(claims: &impl serde::Serialize, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn start(auth: Authenticator) -> TestServer {
    TestServer::start_with_auth(PipelineConfig::default(), auth).await
}

async fn channel(url: &str, token: Option<&str>) -> AuthChannel {
    client::channel(url, Credentials::new(token, None))
        .await
        .unwrap()
}

/// One call on each service, returning each status code (Ok = `Code::Ok`).
async fn one_call_per_service(url: &str, token: Option<&str>, org: &str) -> Vec<Code> {
    let ch = channel(url, token).await;
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    vec![
        code(
            IngestServiceClient::new(ch.clone())
                .create_session(CreateSessionRequest {
                    organization_id: org.into(),
                    camera_id: "cam".into(),
                })
                .await
                .map(drop),
        ),
        code(
            InteractionServiceClient::new(ch.clone())
                .get_summary(GetSummaryRequest {
                    organization_id: org.into(),
                })
                .await
                .map(drop),
        ),
        code(
            CatalogServiceClient::new(ch.clone())
                .list_products(ListProductsRequest {
                    organization_id: org.into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        code(
            AnalysisServiceClient::new(ch)
                .watch_patterns(WatchPatternsRequest {
                    organization_id: org.into(),
                    camera_id: String::new(),
                })
                .await
                .map(drop),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_valid_token_passes_on_every_service() {
    let s = start(Authenticator::new(&config()).unwrap()).await;
    let valid = mint_hs256(&config(), "tester", &["shop".into()], "admin", 600).unwrap();
    assert_eq!(
        one_call_per_service(&s.url, Some(&valid), "shop").await,
        vec![Code::Ok; 4]
    );

    let mut expired = claims(&["shop"]);
    expired.exp = now() - 3_600;
    let mut not_yet = claims(&["shop"]);
    not_yet.nbf = Some(now() + 3_600);
    let mut wrong_issuer = claims(&["shop"]);
    wrong_issuer.iss = Some("someone-else".into());
    let mut wrong_audience = claims(&["shop"]);
    wrong_audience.aud = Some("another-service".into());
    let mut bad_role = claims(&["shop"]);
    bad_role.role = "superuser".into();
    let no_orgs = serde_json::json!({"sub": "tester", "role": "admin", "exp": now() + 600,
                                     "iss": "crow", "aud": "crow"});
    let no_sub = serde_json::json!({"orgs": ["shop"], "role": "admin", "exp": now() + 600,
                                    "iss": "crow", "aud": "crow"});
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_vec(&claims(&["shop"])).unwrap())
    );
    // The RS256 public key used as an HS256 secret: the classic algorithm confusion.
    let public_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/keys/test-rsa-public.pem"
    ))
    .unwrap();
    let switched = hs256(&claims(&["shop"]), &public_pem);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not.a.jwt".into())),
        ("expired", Some(hs256(&expired, SECRET.as_bytes()))),
        ("not yet valid", Some(hs256(&not_yet, SECRET.as_bytes()))),
        (
            "wrong signature",
            Some(hs256(
                &claims(&["shop"]),
                b"another-secret-of-enough-length-xxxxxxxx",
            )),
        ),
        (
            "wrong issuer",
            Some(hs256(&wrong_issuer, SECRET.as_bytes())),
        ),
        (
            "wrong audience",
            Some(hs256(&wrong_audience, SECRET.as_bytes())),
        ),
        ("alg none", Some(alg_none)),
        ("missing orgs", Some(hs256(&no_orgs, SECRET.as_bytes()))),
        ("missing sub", Some(hs256(&no_sub, SECRET.as_bytes()))),
        ("unknown role", Some(hs256(&bad_role, SECRET.as_bytes()))),
        ("public key as HS256 secret", Some(switched)),
    ];
    for (name, token) in &cases {
        assert_eq!(
            one_call_per_service(&s.url, token.as_deref(), "shop").await,
            vec![Code::Unauthenticated; 4],
            "{name}"
        );
    }
    s.stop().await;

    // A server pinned to RS256 refuses the same HS256 token signed with its own public key.
    let rs = AuthConfig {
        algorithm: "RS256".into(),
        public_key: Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/keys/test-rsa-public.pem"
            )
            .into(),
        ),
        ..Default::default()
    };
    let s = start(Authenticator::new(&rs).unwrap()).await;
    let switched = hs256(&claims(&["shop"]), &public_pem);
    assert_eq!(
        one_call_per_service(&s.url, Some(&switched), "shop").await,
        vec![Code::Unauthenticated; 4]
    );
    let private_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/keys/test-rsa-private.pem"
    ))
    .unwrap();
    let rs_token = encode(
        &Header::new(Algorithm::RS256),
        &claims(&["shop"]),
        &EncodingKey::from_rsa_pem(&private_pem).unwrap(),
    )
    .unwrap();
    assert_eq!(
        one_call_per_service(&s.url, Some(&rs_token), "shop").await,
        vec![Code::Ok; 4]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_organization_cannot_touch_another_on_any_rpc() {
    let s = start(Authenticator::new(&config()).unwrap()).await;
    let token_a = mint_hs256(&config(), "a", &["org-a".into()], "admin", 600).unwrap();
    let token_b = mint_hs256(&config(), "b", &["org-b".into()], "admin", 600).unwrap();

    // Organization B has data: a session, an interaction, a product.
    let b = channel(&s.url, Some(&token_b)).await;
    let session_b = IngestServiceClient::new(b.clone())
        .create_session(CreateSessionRequest {
            organization_id: "org-b".into(),
            camera_id: "cam".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let interaction_b = InteractionServiceClient::new(b.clone())
        .create_interaction(CreateInteractionRequest {
            organization_id: "org-b".into(),
            source_type: SourceType::Web as i32,
            data_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    CatalogServiceClient::new(b)
        .upsert_products(UpsertProductsRequest {
            organization_id: "org-b".into(),
            products: vec![Product {
                id: "p1".into(),
                name: "thing".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();

    let a = channel(&s.url, Some(&token_a)).await;
    // For B's real ids and for ids that do not exist, A gets the same answer on every RPC.
    for (session, interaction, product) in [
        (session_b.as_str(), interaction_b.as_str(), "p1"),
        ("no-such-session", "no-such-interaction", "no-such-product"),
    ] {
        let org = || "org-b".to_owned();
        let mut ingest = IngestServiceClient::new(a.clone());
        let mut inter = InteractionServiceClient::new(a.clone());
        let mut catalog = CatalogServiceClient::new(a.clone());
        let mut analysis = AnalysisServiceClient::new(a.clone());
        let results: Vec<(&str, Result<(), tonic::Status>)> = vec![
            (
                "CreateSession",
                ingest
                    .create_session(CreateSessionRequest {
                        organization_id: org(),
                        camera_id: "cam".into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetSession",
                ingest
                    .get_session(GetSessionRequest {
                        organization_id: org(),
                        session_id: session.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetKeyframe",
                ingest
                    .get_keyframe(GetKeyframeRequest {
                        organization_id: org(),
                        session_id: session.into(),
                        frame_index: 0,
                    })
                    .await
                    .map(drop),
            ),
            (
                "CloseSession",
                ingest
                    .close_session(CloseSessionRequest {
                        organization_id: org(),
                        session_id: session.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "CreateInteraction",
                inter
                    .create_interaction(CreateInteractionRequest {
                        organization_id: org(),
                        source_type: SourceType::Web as i32,
                        data_json: "{}".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetInteraction",
                inter
                    .get_interaction(GetInteractionRequest {
                        organization_id: org(),
                        id: interaction.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListInteractions",
                inter
                    .list_interactions(ListInteractionsRequest {
                        organization_id: org(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetSummary",
                inter
                    .get_summary(GetSummaryRequest {
                        organization_id: org(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListDeadLetters",
                inter
                    .list_dead_letters(ListDeadLettersRequest {
                        organization_id: org(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "RetryDeadLetter",
                inter
                    .retry_dead_letter(RetryDeadLetterRequest {
                        organization_id: org(),
                        id: interaction.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "UpsertProducts",
                catalog
                    .upsert_products(UpsertProductsRequest {
                        organization_id: org(),
                        products: vec![Product {
                            id: product.into(),
                            name: "x".into(),
                            ..Default::default()
                        }],
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListProducts",
                catalog
                    .list_products(ListProductsRequest {
                        organization_id: org(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "DeleteProduct",
                catalog
                    .delete_product(DeleteProductRequest {
                        organization_id: org(),
                        product_id: product.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "Analyze",
                analysis
                    .analyze(AnalyzeRequest {
                        organization_id: org(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetAnalysis",
                analysis
                    .get_analysis(GetAnalysisRequest {
                        organization_id: org(),
                        analysis_id: interaction.into(),
                    })
                    .await
                    .map(drop),
            ),
            (
                "WatchPatterns",
                analysis
                    .watch_patterns(WatchPatternsRequest {
                        organization_id: org(),
                        camera_id: String::new(),
                    })
                    .await
                    .map(drop),
            ),
        ];
        for (rpc, result) in results {
            let status = result.expect_err(rpc);
            assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
            assert_eq!(
                status.message(),
                "the token does not grant access to this organization",
                "{rpc}"
            );
        }
        // Streaming frames into B's session (or camera) is refused the same way.
        let mut ingest = IngestServiceClient::new(a.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(Frame {
            organization_id: "org-b".into(),
            camera_id: "cam".into(),
            session_id: session.into(),
            frame_index: 0,
            captured_at_ms: 1_000,
            data: vec![0xFF, 0xD8, 0xFF],
            format: ImageFormat::Jpeg as i32,
        })
        .await
        .unwrap();
        drop(tx);
        let err = client::stream_frames(&mut ingest, rx, |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("does not grant access"),
            "StreamFrames: {err}"
        );
    }

    // B's data is untouched.
    let b = channel(&s.url, Some(&token_b)).await;
    let products = CatalogServiceClient::new(b)
        .list_products(ListProductsRequest {
            organization_id: "org-b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].name, "thing");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_only_its_part() {
    let s = start(Authenticator::new(&config()).unwrap()).await;
    // One call per action: Ingest (CreateInteraction, and a frame stream), Read (GetSummary),
    // Analyze (an empty window: passing the role check gives INVALID_ARGUMENT, so no model runs),
    // Administer (ListDeadLetters).
    async fn calls(url: &str, token: &str) -> [Code; 5] {
        let ch = channel(url, Some(token)).await;
        let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
        let frame = Frame {
            organization_id: "shop".into(),
            camera_id: "cam".into(),
            frame_index: 0,
            captured_at_ms: now() as i64 * 1000,
            data: vec![],
            format: ImageFormat::Jpeg as i32,
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(frame).await.unwrap();
        drop(tx);
        let mut ingest = IngestServiceClient::new(ch.clone());
        let stream = client::stream_frames(&mut ingest, rx, |_| {}).await;
        [
            code(
                InteractionServiceClient::new(ch.clone())
                    .create_interaction(CreateInteractionRequest {
                        organization_id: "shop".into(),
                        source_type: SourceType::Web as i32,
                        data_json: "{}".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            match stream {
                Ok(_) => Code::Ok,
                Err(client::ClientError::Status(s)) => s.code(),
                Err(e) => panic!("{e}"),
            },
            code(
                InteractionServiceClient::new(ch.clone())
                    .get_summary(GetSummaryRequest {
                        organization_id: "shop".into(),
                    })
                    .await
                    .map(drop),
            ),
            code(
                AnalysisServiceClient::new(ch.clone())
                    .analyze(AnalyzeRequest {
                        organization_id: "shop".into(),
                        from_ms: 2_000,
                        to_ms: 1_000,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            code(
                InteractionServiceClient::new(ch)
                    .list_dead_letters(ListDeadLettersRequest {
                        organization_id: "shop".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ]
    }
    const OK: Code = Code::Ok;
    const NO: Code = Code::PermissionDenied;
    const RAN: Code = Code::InvalidArgument;
    for (role, expected) in [
        ("admin", [OK, OK, OK, RAN, OK]),
        ("analyst", [NO, NO, OK, RAN, NO]),
        ("camera", [OK, OK, NO, NO, NO]),
        ("viewer", [NO, NO, OK, NO, NO]),
    ] {
        let mut c = claims(&["shop"]);
        c.role = role.into();
        let token = hs256(&c, SECRET.as_bytes());
        assert_eq!(calls(&s.url, &token).await, expected, "role {role}");
    }
    s.stop().await;
}
