//! Schema helpers for the API document that domain types describe themselves with.

/// One of `values` or `null`, for optional fields of a JSON body (serde takes `null` as absent).
pub fn one_of_or_null(values: &[&str]) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut allowed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    allowed.push(serde_json::Value::Null);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(allowed))
        .build()
}
