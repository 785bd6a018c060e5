// Package deploy holds no code: its directory carries the Kubernetes
// manifests (base/, overlays/) and files the compose stack mounts
// (compose/), and its tests check those and the repository's
// docker-compose.yml against what the dealcast binary actually reads,
// serves and runs.
package deploy
