"""The neural engine (:mod:`.model`: embedding, backbones, heads, probe features) and its artifact
format (:mod:`.artifact`: safetensors + JSON, checksummed, no pickle)."""
