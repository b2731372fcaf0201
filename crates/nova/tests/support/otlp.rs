//! An OpenTelemetry collector's OTLP/HTTP trace receiver, small: it decodes each export with
//! the protocol's own message types and keeps it with the request's headers.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// A running receiver.
pub struct Collector {
    /// `http://127.0.0.1:PORT`, what `observability.otlp_endpoint` names.
    pub endpoint: String,
    received: Arc<Mutex<Vec<(HeaderMap, ExportTraceServiceRequest)>>>,
}

impl Collector {
    /// Listens on a free port, answering 200 to every `POST /v1/traces` it can decode.
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<(HeaderMap, ExportTraceServiceRequest)>>> = Arc::default();
        let kept = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else { return axum::http::StatusCode::BAD_REQUEST };
                    kept.lock().unwrap().push((headers, request));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, received }
    }

    /// Every export received so far, with its headers.
    pub fn received(&self) -> Vec<(HeaderMap, ExportTraceServiceRequest)> {
        self.received.lock().unwrap().clone()
    }
}
