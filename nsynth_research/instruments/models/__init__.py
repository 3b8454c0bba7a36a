"""Model architectures, chosen by a run config's `model.arch`: one module each, holding its
config section and the one layer plan (`plan.Plan`) that both the config check and the Keras
builder read; `registry` lists them. docs/adding-a-model.md shows how to add one."""
