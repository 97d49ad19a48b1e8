//! Host bindings of both worlds. The director world reuses the container world's shared
//! interfaces, so `types`, `process` and `log` exist once on the host.

pub mod container {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "container-cpi",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub mod director {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "director-cpi",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "omni:cpi/types": super::container::omni::cpi::types,
            "omni:cpi/process": super::container::omni::cpi::process,
            "omni:cpi/log": super::container::omni::cpi::log,
        },
    });
}

pub use container::omni::cpi::types;
pub use container::omni::cpi::{log, process};
