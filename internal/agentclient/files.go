package agentclient

import (
	"context"
	"errors"

	"github.com/remocal/remocal/protocol/wire"
)

// ReadFile reads a whole file of the target, in ranges if it is larger than
// one response may carry.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	res, err := c.ReadFileRange(ctx, path, 0, 0)
	if err == nil {
		return res.Data, nil
	}
	if wire.CodeOf(err) != wire.CodeTooLarge {
		return nil, err
	}
	var data []byte
	for {
		res, err := c.ReadFileRange(ctx, path, int64(len(data)), wire.MaxReadSize)
		if err != nil {
			return nil, err
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
