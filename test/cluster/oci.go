package cluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Image describes a single-layer OCI image made of files from this machine.
// WriteImage writes it as an OCI archive (an OCI image layout in a tar), the
// format `ctr images import`, `skopeo copy oci-archive:...` and friends read.
type Image struct {
	// Name is the full reference, e.g. "remocal.local/agent:dev". It is
	// stored as the index annotations io.containerd.image.name and
	// org.opencontainers.image.ref.name (the tag).
	Name       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	// Files maps a path in the image to its content.
	Files []ImageFile
}

// ImageFile is one file of an image: Source is read from this machine, or
// Data is used as is. Symlink makes a symbolic link to Symlink instead.
type ImageFile struct {
	Path    string
	Source  string
	Data    []byte
	Mode    os.FileMode
	Symlink string
}

// epoch is every entry's modification time, so that the same inputs make
// the same digests.
var epoch = time.Unix(0, 0).UTC()

// baseFiles are in every image: an /etc/passwd and /etc/group with root and
// nobody, and a world-writable /tmp.
func baseFiles() []ImageFile {
	return []ImageFile{
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"), Mode: 0o644},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n"), Mode: 0o644},
		{Path: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n"), Mode: 0o644},
	}
}

// layerTar writes the layer: parent directories first, entries sorted.
func layerTar(files []ImageFile) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	entries := map[string]entry{}
	addDir := func(p string, mode int64) {
		if _, ok := entries[p]; !ok {
			entries[p] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX}}
		}
	}
	addDir("tmp", 0o1777)
	for _, f := range append(baseFiles(), files...) {
		name := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if name == "" {
			return nil, fmt.Errorf("image file with empty path")
		}
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			addDir(d, 0o755)
		}
		if f.Symlink != "" {
			entries[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Symlink, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}}
			continue
		}
		data := f.Data
		mode := f.Mode
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, err
			}
			data = b
			if mode == 0 {
				st, err := os.Stat(f.Source)
				if err != nil {
					return nil, err
				}
				mode = st.Mode().Perm()
			}
		}
		if mode == 0 {
			mode = 0o644
		}
		entries[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}, data: data}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, err
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// WriteImage writes img as a gzip-compressed single-layer OCI archive to out.
func WriteImage(out string, img Image) error {
	layer, err := layerTar(img.Files)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Name, err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.ModTime = epoch
	if _, err := zw.Write(layer); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	env := img.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        env,
			"WorkingDir": img.WorkingDir,
			"User":       img.User,
		},
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{digestOf(layer)},
		},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "remocal test/cluster WriteImage"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	layerDesc := descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digestOf(gz.Bytes()), Size: int64(gz.Len())}
	cfgDesc := descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(cfgJSON), Size: int64(len(cfgJSON))}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        cfgDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	tag := img.Name
	if i := strings.LastIndexByte(tag, ':'); i >= 0 && !strings.Contains(tag[i:], "/") {
		tag = tag[i+1:]
	} else {
		tag = "latest"
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest:    digestOf(manifest),
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Name,
				"org.opencontainers.image.ref.name": tag,
			},
			Platform: &platform{Architecture: "amd64", OS: "linux"},
		}},
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	add := func(name string, b []byte, dir bool) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}
		if dir {
			h = &tar.Header{Name: name, Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.Copy(tw, bytes.NewReader(b))
		return err
	}
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digestOf(b), "sha256:") }
	steps := []struct {
		name string
		b    []byte
		dir  bool
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), false},
		{"index.json", index, false},
		{"blobs/", nil, true},
		{"blobs/sha256/", nil, true},
		{blob(manifest), manifest, false},
		{blob(cfgJSON), cfgJSON, false},
		{blob(gz.Bytes()), gz.Bytes(), false},
	}
	for _, s := range steps {
		if err := add(s.name, s.b, s.dir); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
