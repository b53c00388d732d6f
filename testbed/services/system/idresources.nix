{
  ports = { min = 8000; max = 8999; scope = "global"; };
}
