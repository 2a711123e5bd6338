//! The Netwarden gRPC contract (`netwarden.v1`) and conversions between its messages and the
//! domain types in `netwarden-shared`. Nothing outside this crate touches protobuf types except
//! through the re-exported service stubs.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!("gen/netwarden.v1.rs");
}

/// The encoded `FileDescriptorSet` of `netwarden.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");

mod convert;
mod plan;

pub use convert::{
    batch_from_wire, record_to_wire, ConvertError, MAX_PINGS_PER_ROUND, MAX_RECORDS_PER_BATCH,
};
pub use plan::{agent_plan_from_wire, agent_plan_to_wire, MAX_PLAN_ENTRIES};
