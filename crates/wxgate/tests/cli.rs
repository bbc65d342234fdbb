//! The `wxgate` binary, run as a user would.

use std::process::Command;

fn wxgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn sign_prints_the_signature_of_every_vector() {
    for v in vectors()["signature"].as_array().unwrap() {
        let arg = |k: &str| v[k].as_str().unwrap().to_owned();
        let (ok, out, err) = wxgate(&[
            "sign",
            "--token",
            &arg("token"),
            "--timestamp",
            &arg("timestamp"),
            "--nonce",
            &arg("nonce"),
        ]);
        assert!(ok, "{err}");
        assert_eq!(out, format!("signature={}\n", arg("signature")));
    }
}

#[test]
fn sign_with_encrypt_prints_the_msg_signature() {
    for v in vectors()["msg_signature"].as_array().unwrap() {
        let arg = |k: &str| v[k].as_str().unwrap().to_owned();
        let (ok, out, err) = wxgate(&[
            "sign",
            "--token",
            &arg("token"),
            "--timestamp",
            &arg("timestamp"),
            "--nonce",
            &arg("nonce"),
            "--encrypt",
            &arg("encrypt"),
        ]);
        assert!(ok, "{err}");
        let last = out.lines().last().unwrap();
        assert_eq!(last, format!("msg_signature={}", arg("msg_signature")));
    }
}

#[test]
fn sign_without_its_arguments_explains_what_is_missing() {
    let (ok, _, err) = wxgate(&["sign", "--token", "t"]);
    assert!(!ok);
    assert!(err.contains("--timestamp"), "{err}");
}
