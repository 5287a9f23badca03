// Generated from the server's OpenAPI schema by scripts/api-types.mjs: do not edit.
export interface paths {
    "/api/config": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description What the page needs to know: the delay choices and the photo source. */
        get: operations["config_retrieve"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Storage writable, broker reachable, worker seen recently; 503 when not. */
        get: operations["health_retrieve"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Create jobs and read them. */
        get: operations["jobs_list"];
        put?: never;
        /** @description Create jobs and read them. */
        post: operations["jobs_create"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description Create jobs and read them. */
        get: operations["jobs_retrieve"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["stats_retrieve"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Job changes as Server-Sent Events
         * @description One `event: job` (data: the job) per change and `event: job-deleted` (data: {id}) per deletion, each with an increasing `id`. Send `Last-Event-ID` (or `?last_event_id=`) to get what was missed; `event: reset` means it is no longer kept and the list should be fetched again. A `: ping` comment every 15 s.
         */
        get: operations["events_stream"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        Job: {
            /** @description Time-ordered id (26 characters, ULID layout). */
            id: string;
            url: string;
            status: components["schemas"]["StatusEnum"];
            /** Format: date-time */
            created_at: string;
            /**
             * Format: date-time
             * @description When the job becomes due.
             */
            run_at: string;
            /** Format: date-time */
            updated_at: string;
            delay_seconds: number;
            /** Format: date-time */
            started_at: string | null;
            /** Format: date-time */
            finished_at: string | null;
            attempts: number;
            /** @description Why a pending job waits again (e.g. rate limited). */
            pending_reason: string | null;
            /** Format: date-time */
            next_attempt_at: string | null;
            result: components["schemas"]["Photo"] | null;
            error: components["schemas"]["JobError"] | null;
        };
        JobCreate: {
            /** @description Seconds until the job runs (bounds and step from the server's configuration, by default 5 to 300 in steps of 5). Random when omitted. */
            delay_seconds?: number | null;
        };
        JobError: {
            code: string;
            message: string;
        };
        JobPage: {
            results: components["schemas"]["Job"][];
            /** @description The next page, or null. */
            next: string | null;
        };
        Photo: {
            photo_id: string;
            description: string | null;
            alt_description: string | null;
            urls: components["schemas"]["PhotoUrls"];
            width: number;
            height: number;
            color: string | null;
            blur_hash: string | null;
            photographer_name: string;
            photographer_username: string;
            /** Format: uri */
            photographer_url: string;
            /** Format: uri */
            photo_url: string;
            /** Format: uri */
            unsplash_url: string;
            source: components["schemas"]["SourceEnum"];
        };
        PhotoUrls: {
            /** Format: uri */
            raw: string;
            /** Format: uri */
            full: string;
            /** Format: uri */
            regular: string;
            /** Format: uri */
            small: string;
            /** Format: uri */
            thumb: string;
        };
        Problem: {
            type: string;
            title: string;
            status: number;
            detail: string;
        };
        /**
         * @description * `unsplash` - unsplash
         *     * `demo` - demo
         * @enum {string}
         */
        SourceEnum: "unsplash" | "demo";
        Stats: {
            counts: {
                [key: string]: number;
            };
            total: number;
        };
        /**
         * @description * `pending` - pending
         *     * `running` - running
         *     * `completed` - completed
         *     * `failed` - failed
         *     * `cancelled` - cancelled
         * @enum {string}
         */
        StatusEnum: "pending" | "running" | "completed" | "failed" | "cancelled";
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    config_retrieve: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
        };
    };
    health_retrieve: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
        };
    };
    jobs_list: {
        parameters: {
            query?: {
                /** @description From a `next` link. */
                cursor?: string;
                /** @description 1 to 500, default 50. */
                limit?: number;
                /** @description One or more statuses, comma-separated or repeated. */
                status?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobPage"];
                };
            };
            /** @description No response body */
            304: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description application/problem+json */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    jobs_create: {
        parameters: {
            query?: never;
            header?: {
                /** @description Retrying with the same key and body returns the same job. */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": components["schemas"]["JobCreate"];
            };
        };
        responses: {
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description application/problem+json */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description application/problem+json */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description application/problem+json */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description application/problem+json */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description application/problem+json */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Too many creates from this client; `Retry-After` says when to try again. */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The worker is behind or storage is unavailable; nothing was stored. `Retry-After` says when to try again. */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    jobs_retrieve: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
            /** @description No response body */
            304: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description application/problem+json */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    stats_retrieve: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Stats"];
                };
            };
        };
    };
    events_stream: {
        parameters: {
            query?: {
                last_event_id?: string;
            };
            header?: {
                "Last-Event-ID"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The event stream (never ends by itself for long). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
        };
    };
}
