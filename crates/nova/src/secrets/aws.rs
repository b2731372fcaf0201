//! AWS Secrets Manager through the official AWS SDK for Rust (cargo feature `aws`).
//!
//! A secret at `PATH` is the Secrets Manager secret named `<prefix>/PATH`, its fields a JSON
//! object in `SecretString` (what the console's key/value editor writes; a plain string reads
//! as the single field `value`). Its version is the Secrets Manager version id; a write makes a
//! new version staged `AWSCURRENT` and the previous one becomes `AWSPREVIOUS`. A team's secret
//! is tagged `nova:team` and `nova:credential` when created, so IAM policies can use
//! `secretsmanager:ResourceTag/nova:team` to keep teams apart.
//!
//! A check-and-set write ([`Precondition::Current`]) compares the `AWSCURRENT` version, then
//! writes: Secrets Manager has no atomic compare-and-swap, so two writers racing within that
//! window both succeed. Deleting is immediate (`ForceDeleteWithoutRecovery`), so a team can
//! register a credential again under the same name at once.
//!
//! Errors use only the service's error code and Nova's words; the SDK's messages and bodies
//! are never shown.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use super::{AwsSecretsConfig, HealthReport, Precondition, SecretData, SecretError, SecretPath, SecretStore, Version, Versioned};

const KIND: &str = "aws-secrets-manager";

/// The Secrets Manager store.
pub struct AwsSecretsStore {
    client: Client,
    prefix: String,
    region: String,
    endpoint: Option<String>,
    kms_key_id: Option<String>,
}

/// Maps an SDK error to a [`SecretError`] from its error code alone.
fn map_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>, what: &str, path: &SecretPath) -> SecretError {
    let subject = format!("{what} {path}");
    match &e {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            match code {
                "ResourceNotFoundException" => SecretError::NotFound(path.to_string()),
                "ResourceExistsException" => SecretError::Conflict(path.to_string()),
                "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" | "InvalidClientTokenId" | "SignatureDoesNotMatch" => {
                    SecretError::Denied(format!("{subject}: Secrets Manager refused ({code}); check Nova's AWS credentials and IAM policy"))
                }
                "InvalidRequestException" => SecretError::Invalid(format!("{subject}: Secrets Manager refused the request ({code}); the secret may be scheduled for deletion")),
                "InvalidParameterException" | "LimitExceededException" | "EncryptionFailure" | "MalformedPolicyDocumentException" => SecretError::Invalid(format!("{subject}: Secrets Manager refused the request ({code})")),
                _ => SecretError::Unavailable(format!("{subject}: Secrets Manager failed ({code})")),
            }
        }
        // No response body exists in these; their context is the transport's or the SDK's own.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => SecretError::Unavailable(format!("{subject}: cannot reach Secrets Manager: {}", DisplayErrorContext(&e))),
        SdkError::ConstructionFailure(_) => SecretError::Invalid(format!("{subject}: cannot make the request: {}", DisplayErrorContext(&e))),
        _ => SecretError::Unavailable(format!("{subject}: Secrets Manager sent an answer that could not be read")),
    }
}

fn is_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, code: &str) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some(code))
}

impl AwsSecretsStore {
    /// A store for `config`: resolves static credentials (if configured) and loads the SDK's
    /// configuration; nothing is contacted until the first call.
    pub async fn new(config: &AwsSecretsConfig) -> Result<Self, SecretError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(config.timeout).build());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            let resolve = |r: &super::SecretRef, key: &str| r.resolve_local(key).map_err(|e| SecretError::Invalid(e.to_string()));
            let id = resolve(id, "secrets.access_key_id")?;
            let secret = resolve(secret, "secrets.secret_access_key")?;
            let token = config.session_token.as_ref().map(|t| resolve(t, "secrets.session_token")).transpose()?;
            let credentials = Credentials::new(id.expose(), secret.expose(), token.map(|t| t.expose().clone()), None, "nova-config");
            loader = loader.credentials_provider(credentials);
        }
        let sdk = loader.load().await;
        let region = sdk.region().map_or_else(|| "(no region)".to_owned(), ToString::to_string);
        Ok(Self { client: Client::new(&sdk), prefix: config.prefix.trim_matches('/').to_owned(), region, endpoint: config.endpoint.clone(), kms_key_id: config.kms_key_id.clone() })
    }

    fn name(&self, path: &SecretPath) -> String {
        format!("{}/{path}", self.prefix)
    }

    async fn read_version(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        let mut request = self.client.get_secret_value().secret_id(self.name(path));
        if let Some(v) = version {
            request = request.version_id(v.as_str());
        }
        let out = request.send().await.map_err(|e| match version {
            Some(v) if is_code(&e, "ResourceNotFoundException") || is_code(&e, "InvalidParameterException") => SecretError::NotFound(format!("{path} version {v}")),
            _ => map_error(e, "read", path),
        })?;
        let text = out.secret_string().ok_or_else(|| SecretError::Invalid(format!("{path} is a binary secret; Nova reads string secrets only")))?;
        let data = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(object @ serde_json::Value::Object(_)) => SecretData::from_json(object)?,
            _ => SecretData::single(nova_domain::Sensitive::new(text.to_owned())),
        };
        let version = out.version_id().ok_or_else(|| SecretError::Unavailable(format!("read {path}: Secrets Manager sent no version id")))?;
        Ok(Versioned { data, version: Version::new(version) })
    }

    async fn create(&self, path: &SecretPath, text: &str) -> Result<Version, SecretError> {
        let mut request = self.client.create_secret().name(self.name(path)).secret_string(text).client_request_token(uuid::Uuid::new_v4().to_string());
        if let (Some(team), Some(item)) = (path.team_name(), path.team_item()) {
            request = request.tags(Tag::builder().key("nova:team").value(team).build()).tags(Tag::builder().key("nova:credential").value(item).build());
        }
        if let Some(kms) = &self.kms_key_id {
            request = request.kms_key_id(kms);
        }
        let out = request.send().await.map_err(|e| map_error(e, "create", path))?;
        out.version_id().map(Version::new).ok_or_else(|| SecretError::Unavailable(format!("create {path}: Secrets Manager sent no version id")))
    }

    async fn put_value(&self, path: &SecretPath, text: &str) -> Result<Version, SecretError> {
        let out = self.client.put_secret_value().secret_id(self.name(path)).secret_string(text).client_request_token(uuid::Uuid::new_v4().to_string()).send().await.map_err(|e| map_error(e, "write", path))?;
        out.version_id().map(Version::new).ok_or_else(|| SecretError::Unavailable(format!("write {path}: Secrets Manager sent no version id")))
    }

    /// The version staged `AWSCURRENT`.
    async fn current_version(&self, path: &SecretPath) -> Result<Version, SecretError> {
        let out = self.client.describe_secret().secret_id(self.name(path)).send().await.map_err(|e| map_error(e, "describe", path))?;
        let stages = out.version_ids_to_stages().ok_or_else(|| SecretError::NotFound(path.to_string()))?;
        stages.iter().find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT")).map(|(id, _)| Version::new(id.clone())).ok_or_else(|| SecretError::NotFound(path.to_string()))
    }
}

#[async_trait::async_trait]
impl SecretStore for AwsSecretsStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{} at {e} prefix {}", self.region, self.prefix),
            None => format!("{} prefix {}", self.region, self.prefix),
        }
    }

    async fn read(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        self.read_version(path, version).await
    }

    async fn put(&self, path: &SecretPath, data: &SecretData, precondition: Precondition) -> Result<Version, SecretError> {
        data.validate()?;
        let text = serde_json::Value::Object(data.to_json()).to_string();
        match precondition {
            Precondition::Absent => self.create(path, &text).await,
            Precondition::Current(expected) => {
                let current = self.current_version(path).await.map_err(|e| if matches!(e, SecretError::NotFound(_)) { SecretError::Conflict(path.to_string()) } else { e })?;
                if current != expected {
                    return Err(SecretError::Conflict(path.to_string()));
                }
                self.put_value(path, &text).await
            }
            Precondition::None => match self.put_value(path, &text).await {
                Err(SecretError::NotFound(_)) => match self.create(path, &text).await {
                    Err(SecretError::Conflict(_)) => self.put_value(path, &text).await, // created meanwhile
                    other => other,
                },
                other => other,
            },
        }
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        match self.client.delete_secret().secret_id(self.name(path)).force_delete_without_recovery(true).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(map_error(e, "delete", path)),
        }
    }

    async fn list(&self, prefix: Option<&SecretPath>) -> Result<Vec<SecretPath>, SecretError> {
        let name_prefix = match prefix {
            Some(p) => format!("{}/", self.name(p)),
            None => format!("{}/", self.prefix),
        };
        let filter = Filter::builder().key(FilterNameStringType::Name).values(&name_prefix).build();
        let mut pages = self.client.list_secrets().filters(filter).into_paginator().send();
        let mut found = Vec::new();
        let root = SecretPath::parse("_nova").expect("valid");
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error(e, "list", prefix.unwrap_or(&root)))?;
            for secret in page.secret_list() {
                // The name filter is a prefix match on words; keep exactly what is under the prefix.
                let Some(rest) = secret.name().and_then(|n| n.strip_prefix(&format!("{}/", self.prefix))) else { continue };
                if let Ok(path) = SecretPath::parse(rest) {
                    if prefix.is_none_or(|p| path.starts_with(p) && &path != p) {
                        found.push(path);
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn health_check(&self) -> HealthReport {
        let target = self.describe();
        let listed = self.client.list_secrets().max_results(1).send().await.map_err(|e| map_error(e, "list", &SecretPath::parse("_nova").expect("valid")));
        if let Err(e) = listed {
            let fix = match e {
                SecretError::Denied(_) => "give Nova's IAM identity secretsmanager:ListSecrets, and Create/Get/Put/Describe/DeleteSecret on secrets named <prefix>/* (docs/CREDENTIALS.md)",
                _ => "check secrets.region, secrets.endpoint and the network path to Secrets Manager",
            };
            return HealthReport::fail(KIND, target, e.to_string(), fix);
        }
        match super::probe_round_trip(self).await {
            Ok(()) => HealthReport::pass(KIND, target, "listed, then created, read back and deleted a probe secret"),
            Err((step, e)) => HealthReport::fail(
                KIND,
                target,
                format!("probe {step} failed: {e}"),
                format!("allow Nova's IAM identity secretsmanager:CreateSecret, GetSecretValue, PutSecretValue, DescribeSecret, TagResource and DeleteSecret on {}/*", self.prefix),
            ),
        }
    }
}
