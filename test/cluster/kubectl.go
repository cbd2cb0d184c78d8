package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kubectl runs the cluster's kubectl as cluster-admin and returns its
// standard output; the error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlInput(ctx, "", args...)
}

// KubectlInput is Kubectl with standard input.
func (c *Cluster) KubectlInput(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := c.KubectlCmd(ctx, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// KubectlCmd returns an unstarted kubectl command with the admin kubeconfig.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.KubectlPath, append([]string{"--kubeconfig", c.Kubeconfig, "--cache-dir", filepath.Join(StateDir, "kubectl-cache")}, args...)...)
	cmd.Env = daemonEnv([]string{"KUBECONFIG=" + c.Kubeconfig})
	return cmd
}

// Apply applies a manifest (YAML or JSON, several documents allowed).
func (c *Cluster) Apply(ctx context.Context, manifest string) error {
	_, err := c.KubectlInput(ctx, manifest, "apply", "-f", "-")
	return err
}

// ctr runs containerd's ctr against the harness's containerd, in the
// Kubernetes namespace.
func ctr(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "ctr", append([]string{"--address", ctrdSocket(), "--namespace", containerdNSK8s}, args...)...)
}

// ImportImage imports an OCI archive into the node's containerd, where pods
// find it without pulling.
func (c *Cluster) ImportImage(ctx context.Context, tarPath string) error {
	_, err := ctr(ctx, "images", "import", "--no-unpack=false", tarPath)
	if err != nil {
		return fmt.Errorf("importing %s: %w", tarPath, err)
	}
	return nil
}

// TagImage gives an image of the node's containerd another name, as if it
// had been pulled from another registry (an air-gapped install's).
func (c *Cluster) TagImage(ctx context.Context, src, dst string) error {
	if _, err := ctr(ctx, "images", "tag", "--force", src, dst); err != nil {
		return fmt.Errorf("tagging image %s as %s: %w", src, dst, err)
	}
	return nil
}

// RemoveImage removes an image a test imported from the node's containerd.
func (c *Cluster) RemoveImage(ctx context.Context, name string) error {
	if _, err := ctr(ctx, "images", "rm", name); err != nil {
		return fmt.Errorf("removing image %s: %w", name, err)
	}
	return nil
}

// Images lists the image names in the node's containerd.
func (c *Cluster) Images(ctx context.Context) ([]string, error) {
	out, err := ctr(ctx, "images", "list", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}
