"""Tell drf-spectacular how API keys are sent, so the OpenAPI schema documents them."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "conversions.auth.ApiKeyAuthentication"
    name = "ApiKeyHeader"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Send "Authorization: Api-Key <key>". Keys are created in the admin.',
        }


class QueryApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "conversions.auth.QueryParamApiKeyAuthentication"
    name = "ApiKeyQuery"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "query", "name": "key", "description": "For postbacks: ?key=<key>."}
