package rooms

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

func decode(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
