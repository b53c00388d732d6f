// Package model holds the services, infrastructure, distribution and manifest
// types of dydisnix, their JSON, YAML and Nix readers and writers, validation
// and canonical hashing.
//
// Values of free-form properties are kept in a JSON-like form: string, bool,
// json.Number (ints and floats, textually exact), []any and map[string]any.
// Every reader normalises to that form, so two models that mean the same thing
// compare and hash the same whatever file format they came from.
package model
