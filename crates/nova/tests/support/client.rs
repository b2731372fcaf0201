//! A user of Nova's API for tests: an API token for a catalog user, and every response body
//! kept for the leak check.

use nova_domain::EntityRef;
use serde_json::Value;

use super::TestApp;

/// A request as a user, every response body kept for the leak check.
pub struct Client<'a> {
    app: &'a TestApp,
    token: String,
    /// Every response body, in order.
    pub bodies: std::sync::Mutex<Vec<String>>,
}

impl<'a> Client<'a> {
    /// A client acting as `user` (a name in the `default` namespace).
    pub async fn new(app: &'a TestApp, user: &str) -> Self {
        let user = EntityRef::new("user", "default", user);
        let (token, _) = app.state.auth.tokens.create(&user, "test", None, true).await.unwrap();
        Self { app, token: token.expose().clone(), bodies: Default::default() }
    }

    /// Sends a request; answers the status and the body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        (status, text)
    }

    /// [`Client::send`], the body parsed as JSON (`null` when it is not).
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, text) = self.send(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits for a build's final state; answers it and its log.
    pub async fn finished(&self, id: &str) -> (Value, String) {
        for _ in 0..1200 {
            let (_, b) = self.json(reqwest::Method::GET, &format!("/api/v1/builds/{id}"), None).await;
            if !matches!(b["state"].as_str(), Some("requested" | "queued" | "running")) {
                let (_, log) = self.send(reqwest::Method::GET, &format!("/api/v1/builds/{id}/log"), None).await;
                return (b, log);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        panic!("build {id} did not finish");
    }
}
