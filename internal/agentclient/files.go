package agentclient

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/wire"
)

// MaxFileSize bounds what ReadFile copies from the target into this
// machine's memory. Remote files are what a program reads from its pod:
// configuration, certificates, templates, small data sets, far below this.
// A file above it is held twice while it is handed to a program (the
// supervisor's copy and the program's memfd), and over a port-forward at
// tens of MB/s takes longer to fetch than the program would wait for it
// anyway: such a file belongs on this machine. Without a bound, a 20 GB file
// in the pod would exhaust this machine's memory.
const MaxFileSize = 256 << 20

// ErrFileTooLarge is wrapped by ReadFile's error for a file over
// MaxFileSize; the error also matches unix.EFBIG.
var ErrFileTooLarge = errors.New("remote file too large to copy")

// FileTooLargeError says which file was over MaxFileSize and how to make it
// local.
type FileTooLargeError struct {
	Path string
	Size int64 // as far as known: at least this many bytes
}

func (e *FileTooLargeError) Error() string {
	return fmt.Sprintf("the target's file %s has %d MiB or more, over the %d MiB remocal copies from the target; "+
		"make it local with \"fs\": {\"local\": [%q]} in .remocal/config.json (and copy the file to this machine if the program needs it)",
		e.Path, e.Size>>20, MaxFileSize>>20, e.Path)
}

func (e *FileTooLargeError) Unwrap() []error { return []error{ErrFileTooLarge, unix.EFBIG} }

// ReadFile reads a whole file of the target, in ranges if it is larger than
// one response may carry. A file over MaxFileSize is not read: the error is
// a *FileTooLargeError.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return c.readFile(ctx, path, MaxFileSize)
}

func (c *Client) readFile(ctx context.Context, path string, limit int64) ([]byte, error) {
	res, err := c.ReadFileRange(ctx, path, 0, 0)
	if err == nil {
		if int64(len(res.Data)) > limit {
			return nil, &FileTooLargeError{Path: path, Size: int64(len(res.Data))}
		}
		return res.Data, nil
	}
	if wire.CodeOf(err) != wire.CodeTooLarge {
		return nil, err
	}
	// Larger than one read: refuse before reading if the size says so,
	// and keep counting, as the file may grow while it is read.
	if info, err := c.Stat(ctx, path); err == nil && info.Size > limit {
		return nil, &FileTooLargeError{Path: path, Size: info.Size}
	}
	var data []byte
	for {
		res, err := c.ReadFileRange(ctx, path, int64(len(data)), wire.MaxReadSize)
		if err != nil {
			return nil, err
		}
		if int64(len(data)+len(res.Data)) > limit {
			return nil, &FileTooLargeError{Path: path, Size: int64(len(data) + len(res.Data))}
		}
		data = append(data, res.Data...)
		if res.EOF || len(res.Data) == 0 {
			return data, nil
		}
	}
}

// ReadFileRange reads length bytes at offset; length 0 means the whole file.
func (c *Client) ReadFileRange(ctx context.Context, path string, offset, length int64) (*wire.FileReadResult, error) {
	return call[*wire.FileReadResult](ctx, c, &wire.FileRead{Path: path, Offset: offset, Length: length})
}

// Stat follows symlinks, like stat(2).
func (c *Client) Stat(ctx context.Context, path string) (*wire.FileInfo, error) {
	return call[*wire.FileInfo](ctx, c, &wire.FileStat{Path: path})
}

// Lstat does not follow a final symlink, like lstat(2).
func (c *Client) Lstat(ctx context.Context, path string) (*wire.FileInfo, error) {
	return call[*wire.FileInfo](ctx, c, &wire.FileStat{Path: path, NoFollow: true})
}

// Readlink returns a symlink's content.
func (c *Client) Readlink(ctx context.Context, path string) (string, error) {
	res, err := call[*wire.FileReadlinkResult](ctx, c, &wire.FileReadlink{Path: path})
	if err != nil {
		return "", err
	}
	return res.Target, nil
}

// ReadDir lists a directory, sorted by name.
func (c *Client) ReadDir(ctx context.Context, path string) ([]wire.DirEntry, error) {
	res, err := call[*wire.FileReaddirResult](ctx, c, &wire.FileReaddir{Path: path})
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// Access checks permissions as the target process would, like access(2).
// mode is a combination of R_OK (4), W_OK (2) and X_OK (1), or 0 for
// existence.
func (c *Client) Access(ctx context.Context, path string, mode uint32) error {
	_, err := call[*wire.FileAccessResult](ctx, c, &wire.FileAccess{Path: path, Mode: mode})
	return err
}

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool {
	return errors.Is(err, &wire.Error{Code: wire.CodeNotFound})
}
