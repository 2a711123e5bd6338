//! One error-code map for every interface, so gRPC and REST never disagree about what went wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    /// A request body over its endpoint's limit.
    PayloadTooLarge,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            // What tonic answers for a message over its limit.
            ErrorCode::PayloadTooLarge => tonic::Code::OutOfRange,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }
}

/// Every error that reaches a client says which shared code it is, so each interface maps it
/// the same way (the model is quickwit-proto's `ServiceError`).
pub trait ServiceError: std::error::Error {
    fn error_code(&self) -> ErrorCode;

    /// What the client is told; by default the error's own text.
    fn client_message(&self) -> String {
        self.to_string()
    }
}

/// A [`ServiceError`] as a gRPC status: the one place a status is made.
pub fn grpc_status<E: ServiceError + ?Sized>(err: &E) -> tonic::Status {
    tonic::Status::new(err.error_code().grpc_code(), err.client_message())
}

impl ServiceError for crate::storage::StoreError {
    /// Every store error answers "unavailable": the client may try again, and what went wrong
    /// inside is for the log. (Ingest tells a permanent refusal apart on its own.)
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Unavailable
    }

    fn client_message(&self) -> String {
        "the database is unavailable; try again".into()
    }
}

/// An error as an operator or agent sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
}

impl ServiceError for ApiError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl From<crate::storage::StoreError> for ApiError {
    fn from(err: crate::storage::StoreError) -> Self {
        // Storage details go to the log, not to clients.
        tracing::error!(error = %err, "storage error");
        ApiError::new(err.error_code(), err.client_message())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        grpc_status(&err)
    }
}

/// What every failed request answers: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    code: ErrorCode,
    /// What was wrong, naming the parameter or field first (`limit: must be ...`).
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.code.http_status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_and_http_agree() {
        let cases = [
            (
                ErrorCode::InvalidArgument,
                400,
                tonic::Code::InvalidArgument,
            ),
            (ErrorCode::NotFound, 404, tonic::Code::NotFound),
            (ErrorCode::AlreadyExists, 409, tonic::Code::AlreadyExists),
            (
                ErrorCode::ResourceExhausted,
                429,
                tonic::Code::ResourceExhausted,
            ),
            (
                ErrorCode::PermissionDenied,
                403,
                tonic::Code::PermissionDenied,
            ),
            (
                ErrorCode::Unauthenticated,
                401,
                tonic::Code::Unauthenticated,
            ),
            (ErrorCode::PayloadTooLarge, 413, tonic::Code::OutOfRange),
            (ErrorCode::Unavailable, 503, tonic::Code::Unavailable),
        ];
        for (code, http, grpc) in cases {
            assert_eq!(code.http_status().as_u16(), http);
            assert_eq!(code.grpc_code(), grpc);
            let status: tonic::Status = ApiError::new(code, "x").into();
            assert_eq!(status.code(), grpc);
        }
    }
}
