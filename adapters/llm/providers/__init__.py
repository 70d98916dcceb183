"""One pure codec module per provider wire: encode_request, decode_response, StreamDecoder."""
