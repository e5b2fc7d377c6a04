//! `crdgen`: writes the generated CRD YAML into `crds/` and the chart and the connector reference into
//! `docs/connector-reference.md`, or with `--dump-objects FILE`
//! writes every object the operator builds for the fixtures (for schema validation).

use anyhow::Context;
use s3_sentinel_operator::{crdgen, reference};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let yaml = crdgen::crd_yaml()?;
            for rel in crdgen::CRD_PATHS {
                let path = crdgen::workspace_root().join(rel);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("failed to create {}", dir.display()))?;
                }
                std::fs::write(&path, &yaml)
                    .with_context(|| format!("failed to write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            let path = crdgen::workspace_root().join(reference::REFERENCE_PATH);
            std::fs::write(&path, reference::connector_reference())
                .with_context(|| format!("failed to write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        [flag, file] if flag == "--dump-objects" => {
            std::fs::write(file, crdgen::dump_objects()?)
                .with_context(|| format!("failed to write {file}"))?;
            println!("wrote {file}");
        }
        _ => anyhow::bail!("usage: crdgen [--dump-objects FILE]"),
    }
    Ok(())
}
