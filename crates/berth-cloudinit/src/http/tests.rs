use super::*;
use crate::testserver::{Reply, TestPki, TestServer};

const T: Duration = Duration::from_secs(5);

fn no_trust() -> HttpClient {
    HttpClient::new(TrustAnchors::bundle("/nonexistent"))
}

#[test]
fn targets() {
    let t = Target::parse("http://169.254.169.254/latest/user-data").unwrap();
    assert!(!t.is_https() && !t.is_loopback());
    assert_eq!(t.to_string(), "http://169.254.169.254/latest/user-data");
    let t = Target::parse("https://[::1]:8443/a?b=c").unwrap();
    assert!(t.is_https() && t.is_loopback());
    // What messages show: the query may hold a secret.
    assert_eq!(t.to_string(), "https://[::1]:8443/a?***");
    let t = Target::parse("https://joe:s3cret@h.example/t?token=abc").unwrap();
    assert_eq!(t.to_string(), "https://***@h.example/t?***");
    assert!(Target::parse("http://LocalHost:8080/").unwrap().is_loopback());
    assert!(Target::parse("http://127.0.0.2/").unwrap().is_loopback());
    assert_eq!(Target::parse("http://h").unwrap().to_string(), "http://h/");
    for bad in [
        "ftp://x/y",
        "http://",
        "not a url",
        "/relative",
        "file:///etc/passwd",
        "http://joe:secret@[bad/x",
        "joe:secret@h.example/x",
        "http://joe:se#cret@h:port/x",
    ] {
        assert!(
            matches!(Target::parse(bad), Err(FetchError::Permanent(ref m))
                if m.contains("not a usable URL") && !m.contains("secret")),
            "{bad}"
        );
    }
}

/// RFC 3986 section 5.4's examples, from its base `http://a/b/c/d;p?q`.
#[test]
fn redirects_resolve_per_rfc_3986() {
    let base = Target::parse("http://a/b/c/d;p?q").unwrap();
    for (location, expected) in [
        ("g", "http://a/b/c/g"),
        ("./g", "http://a/b/c/g"),
        ("g/", "http://a/b/c/g/"),
        ("/g", "http://a/g"),
        ("//g", "http://g/"),
        ("//other:81/x/y", "http://other:81/x/y"),
        ("?y", "http://a/b/c/d;p?y"),
        ("g?y", "http://a/b/c/g?y"),
        ("..", "http://a/b/"),
        ("../g", "http://a/b/g"),
        ("../..", "http://a/"),
        ("../../../g", "http://a/g"),
        ("/./g", "http://a/g"),
        ("g;x?y#s", "http://a/b/c/g;x?y#s"),
        ("https://o/p", "https://o/p"),
    ] {
        assert_eq!(base.redirect(location).unwrap().as_str(), expected, "{location}");
    }
    let https = Target::parse("https://a/b/c").unwrap();
    assert_eq!(https.redirect("//g/x").unwrap().as_str(), "https://g/x");
    for bad in ["http://o/p", "ftp://o/p", "//"] {
        let err = https.redirect(bad).unwrap_err();
        assert!(
            matches!(err, FetchError::Permanent(ref m) if m.contains("redirects to")),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn get_follows_redirects_and_reports_status() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/start" => Reply::redirect("/dir/next"),
        "/dir/next" => Reply::redirect("../final"),
        "/final" => Reply::ok(b"#cloud-config\n".to_vec()),
        "/loop" => Reply::redirect("/loop"),
        _ => Reply::status(404),
    })
    .await;
    let client = no_trust();
    let r = client.get(&server.url("/start"), &[], T).await.unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"#cloud-config\n".as_slice())
    );
    assert!(r.url.ends_with("/final"), "{}", r.url);
    let r = client.get(&server.url("/missing"), &[], T).await.unwrap();
    assert_eq!(r.status, 404);
    assert!(matches!(
        client.get(&server.url("/loop"), &[], T).await,
        Err(FetchError::Permanent(ref m)) if m.contains("more than 5 redirects")
    ));
    let requests = server.requests();
    assert!(
        requests[0]
            .header("user-agent")
            .is_some_and(|v| v.starts_with("berth-cloud-init"))
    );
}

/// The IMDSv2 token goes to the server it was made for, and along redirects on that server,
/// but not to another host a redirect names (absolute or `//host/path`).
#[tokio::test]
async fn a_redirect_to_another_host_drops_the_custom_headers() {
    let other = TestServer::start(|_| Reply::ok(b"elsewhere".to_vec())).await;
    let other_port = other.port();
    let origin = TestServer::start(move |req| match req.path.as_str() {
        "/same" => Reply::redirect("/final"),
        "/absolute" => Reply::redirect(&format!("http://localhost:{other_port}/stolen")),
        "/scheme-relative" => Reply::redirect(&format!("//localhost:{other_port}/stolen2")),
        _ => Reply::ok(b"here".to_vec()),
    })
    .await;
    let client = no_trust();
    let token = [("X-aws-ec2-metadata-token", "secret-token")];
    let r = client.get(&origin.url("/same"), &token, T).await.unwrap();
    assert_eq!(r.body, b"here");
    for path in ["/absolute", "/scheme-relative"] {
        let r = client.get(&origin.url(path), &token, T).await.unwrap();
        assert_eq!(r.body, b"elsewhere", "{path}");
    }
    let at_origin = origin.requests();
    assert_eq!(at_origin.len(), 4);
    assert!(
        at_origin
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token") == Some("secret-token")),
        "{at_origin:?}"
    );
    let at_other = other.requests();
    assert_eq!(
        at_other.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/stolen", "/stolen2"]
    );
    assert!(
        at_other
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token").is_none()),
        "the token leaked to another host: {at_other:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that is bound (so nothing else can take it) but not listening: refused.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
    let err = no_trust()
        .get(&format!("http://127.0.0.1:{port}/x"), &[], Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = TestServer::start(|_| Reply::ok(b"late".to_vec()).delayed(Duration::from_secs(30))).await;
    let started = std::time::Instant::now();
    let err = no_trust()
        .get(&server.url("/"), &[], Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Transient(ref m) if m.contains("no answer")),
        "{err:?}"
    );
    // It gave up well before the answer came (a bound on what is tested, not on the machine).
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn too_large_an_answer_is_refused() {
    let server = TestServer::start(|_| Reply::ok(vec![b'a'; MAX_BODY + 1])).await;
    let err = no_trust().get(&server.url("/"), &[], T).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m) if m.contains("larger than 16 MiB")),
        "{err:?}"
    );
}

#[tokio::test]
async fn https_trusts_the_bundle_and_the_extra_directories_only() {
    let pki = TestPki::new("Berth test CA", &["localhost", "127.0.0.1"]);
    let server = TestServer::start_tls(&pki, |_| Reply::ok(b"#cloud-config\nhostname: tls\n".to_vec())).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.crt");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();
    let r = HttpClient::new(TrustAnchors::bundle(&bundle))
        .get(&server.url("/user-data"), &[], T)
        .await
        .unwrap();
    assert_eq!(r.body, b"#cloud-config\nhostname: tls\n");
    let by_name = format!("https://localhost:{}/user-data", server.port());
    let r = HttpClient::new(TrustAnchors::bundle(&bundle))
        .get(&by_name, &[], T)
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // The CA in an extra directory (the bundle knows only another CA).
    let stranger = TestPki::new("Some other CA", &["localhost"]);
    std::fs::write(&bundle, &stranger.ca_pem).unwrap();
    let extra = dir.path().join("ca-certificates");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("site.pem"), &pki.ca_pem).unwrap();
    std::fs::write(extra.join("README"), "not a certificate, and not read").unwrap();
    let trust = TrustAnchors {
        bundle: bundle.clone(),
        extra_dirs: vec![dir.path().join("missing"), extra.clone()],
    };
    let r = HttpClient::new(trust)
        .get(&server.url("/"), &[], T)
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // Signed by a CA nobody trusts: a permanent error that says why.
    let err = HttpClient::new(TrustAnchors::bundle(&bundle))
        .get(&server.url("/user-data"), &[], T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m) if m.contains("invalid peer certificate: UnknownIssuer")),
        "{err:?}"
    );

    // A file in a CA directory that holds no certificate is named.
    std::fs::write(extra.join("broken.crt"), "-----BEGIN NOTHING-----\n").unwrap();
    let trust = TrustAnchors {
        bundle,
        extra_dirs: vec![extra.clone()],
    };
    let err = HttpClient::new(trust)
        .get(&server.url("/"), &[], T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m)
            if m.contains("broken.crt: no usable PEM certificate")),
        "{err:?}"
    );
}

#[tokio::test]
async fn https_without_trusted_certificates_is_a_clear_error_and_http_still_works() {
    let server = TestServer::start(|_| Reply::ok(b"plain".to_vec())).await;
    let client = HttpClient::new(TrustAnchors {
        bundle: "/nonexistent/ca.crt".into(),
        extra_dirs: vec!["/nonexistent/dir".into()],
    });
    let url = server.url("/").replace("http://", "https://");
    let err = client.get(&url, &[], T).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m)
            if m.contains("no trusted certificate: /nonexistent/ca.crt is missing")),
        "{err:?}"
    );
    assert_eq!(client.get(&server.url("/"), &[], T).await.unwrap().body, b"plain");
}

/// `berth.network.http_proxy` carries fetches (the proxy sees the absolute URL) except to
/// the hosts of `no_proxy`, which are reached directly.
#[tokio::test]
async fn fetches_go_through_the_proxy_except_no_proxy_hosts() {
    let proxy = TestServer::start(|req| {
        if req.path.starts_with("http://") {
            Reply::ok(b"via proxy".to_vec())
        } else {
            Reply::status(400)
        }
    })
    .await;
    let direct = TestServer::start(|_| Reply::ok(b"direct".to_vec())).await;
    let proxies = |no_proxy: Option<&str>| Proxies {
        http: Some(proxy.url("")),
        https: None,
        no_proxy: no_proxy.map(str::to_string),
    };
    let via = no_trust().with_proxies(proxies(None));
    let r = via
        .get("http://datasource.invalid/user-data", &[], T)
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"via proxy".as_slice()));
    let r = via.get(&direct.url("/x"), &[], T).await.unwrap();
    assert_eq!(r.body, b"via proxy");
    assert_eq!(
        proxy
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>(),
        vec![
            "http://datasource.invalid/user-data".to_string(),
            direct.url("/x")
        ]
    );
    assert!(direct.requests().is_empty());

    let exempt = no_trust().with_proxies(proxies(Some("example.org, 127.0.0.1")));
    let r = exempt.get(&direct.url("/y"), &[], T).await.unwrap();
    assert_eq!(r.body, b"direct");
    assert_eq!(direct.requests().len(), 1);
    assert_eq!(proxy.requests().len(), 2);
}

#[tokio::test]
async fn download_streams_to_a_file_through_redirects_and_refuses_errors_and_excess() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let served = body.clone();
    let server = TestServer::start(move |req| match req.path.as_str() {
        "/bundle" => Reply::redirect("/files/bundle"),
        "/files/bundle" => Reply::ok(served.clone()),
        _ => Reply::status(404),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("got");
    let client = no_trust();
    let mut calls = Vec::new();
    let n = client
        .download(&server.url("/bundle"), &dest, 1 << 30, T, &mut |done, total| {
            calls.push((done, total))
        })
        .await
        .unwrap();
    assert_eq!(n, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(calls.last(), Some(&(n, Some(n))));

    let err = client
        .download(&server.url("/missing"), &dest, 1 << 30, T, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m) if m.contains("HTTP 404")),
        "{err:?}"
    );
    assert!(!dest.exists(), "a failed download leaves no file");

    let err = client
        .download(&server.url("/bundle"), &dest, 1 << 20, T, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Permanent(ref m) if m.contains("larger than 1 MiB")),
        "{err:?}"
    );
    assert!(!dest.exists());
}
