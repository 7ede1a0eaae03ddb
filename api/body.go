package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/labstack/echo/v4"
)

// maxBodyBytes bounds every request body; larger gets M_TOO_LARGE.
const maxBodyBytes = 1 << 20

// readJSON reads the request body into v: M_NOT_JSON when the body is not
// JSON at all, M_BAD_JSON when it is JSON of the wrong shape. An empty body
// counts as {} where allowEmpty is set (several endpoints take no body).
func readJSON(c echo.Context, v any, allowEmpty bool) error {
	raw, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeJSON(raw, v, allowEmpty)
}

func readBody(c echo.Context) ([]byte, error) {
	if c.Request().ContentLength > maxBodyBytes {
		return nil, errorf(413, "M_TOO_LARGE", "Request body is too large")
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBodyBytes+1))
	if err != nil {
		return nil, errNotJSON("could not read request body")
	}
	if len(raw) > maxBodyBytes {
		return nil, errorf(413, "M_TOO_LARGE", "Request body is too large")
	}
	return raw, nil
}

func decodeJSON(raw []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		if allowEmpty {
			return nil
		}
		return errNotJSON("request body is empty")
	}
	if !json.Valid(raw) {
		return errNotJSON("request body is not valid JSON")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return errBadJSON(fmt.Sprintf("request body has the wrong shape: %v", err))
	}
	return nil
}

// readObject reads a body that must be a JSON object (event content) and
// returns it verbatim.
func readObject(c echo.Context) (json.RawMessage, error) {
	raw, err := readBody(c)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := decodeJSON(raw, &obj, false); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errBadJSON("content must be a JSON object")
	}
	return json.RawMessage(bytes.TrimSpace(raw)), nil
}
