//! The floor binary answers `success` on every route shape, in both modes, so
//! a benchmark row cannot measure a fast error instead of an answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Floor(Child, String);

impl Floor {
    fn start(args: &[&str]) -> Floor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wxgate-bench-floor"))
            .args(args)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the floor binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("the floor prints its address");
        let addr = line
            .trim()
            .strip_prefix("floor listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Floor(child, addr)
    }

    /// One request on a fresh connection; the whole answer as text.
    fn call(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(&self.1).expect("connects");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("reads");
        answer
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn both_modes_answer_success_on_every_route_shape() {
    for args in [&[][..], &["--axum"][..]] {
        let floor = Floor::start(args);
        for (method, path, body) in [
            (
                "GET",
                "/wx/wxapp?signature=a&timestamp=1&nonce=2&echostr=e",
                "",
            ),
            (
                "POST",
                "/wx/wxapp?signature=a",
                "<xml><Content>bench</Content></xml>",
            ),
            (
                "POST",
                "/wecom/wwcorp/1000002?msg_signature=a&timestamp=1&nonce=2",
                "<xml><Encrypt><![CDATA[x]]></Encrypt></xml>",
            ),
            ("GET", "/v1/apps/wxapp/access_token", ""),
            (
                "POST",
                "/v1/apps/wxapp/jssdk/signature",
                r#"{"url":"https://a/"}"#,
            ),
            ("GET", "/", ""),
            ("GET", "/proxy/wxapp/cgi-bin/user/info?openid=o", ""),
        ] {
            let answer = floor.call(method, path, body);
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nsuccess"),
                "{args:?} {method} {path}: {answer:?}"
            );
        }
    }
}

#[test]
fn the_axum_mode_really_routes() {
    let floor = Floor::start(&["--axum"]);
    let answer = floor.call("GET", "/not/a/route", "");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer:?}");
}
