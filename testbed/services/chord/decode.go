package main

import (
	"encoding/json"
	"net/http"
)

// jsonDecode decodes a small JSON request body.
func jsonDecode(r *http.Request, v any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16)).Decode(v)
}
